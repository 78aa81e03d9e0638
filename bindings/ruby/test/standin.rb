# frozen_string_literal: true

# Starts the repository's stand-in vPoller Proxy (tests/standin, built by
# `make test`) on a free loopback port and stops it by pid.
module StandIn
  BINARY = ENV.fetch("VPOLLER_STANDIN") do
    File.expand_path("../../../target/release/vpoller-standin", __dir__)
  end

  # Yields the endpoint of a fresh stand-in; stops it afterwards, also on failure.
  def self.run
    raise "#{BINARY} is missing: run `make test`" unless File.executable?(BINARY)

    reader, writer = IO.pipe
    pid = Process.spawn(BINARY, "--workers", "2", out: writer)
    writer.close
    begin
      endpoint = reader.gets&.chomp
      raise "the stand-in proxy did not start" if endpoint.nil? || endpoint.empty?

      yield endpoint
    ensure
      Process.kill("KILL", pid)
      Process.wait(pid)
      reader.close
    end
  end
end
