# frozen_string_literal: true

# Runs a server program the tests need and stops it by pid.
module Spawned
  # Starts command, yields the first line it prints (its address), and kills
  # it afterwards, also on failure.
  def self.run(*command, what:)
    raise "#{command.first} is missing: run `make test`" unless File.executable?(command.first)

    reader, writer = IO.pipe
    pid = Process.spawn(*command, out: writer, err: File::NULL)
    writer.close
    begin
      line = reader.gets&.chomp
      raise "#{what} did not start" if line.nil? || line.empty?

      yield line
    ensure
      Process.kill("KILL", pid)
      Process.wait(pid)
      reader.close
    end
  end
end
