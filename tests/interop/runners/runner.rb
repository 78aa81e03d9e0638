# frozen_string_literal: true

# Interop runner over the Ruby binding: one VPoller::Client for its whole life.
#
# Usage: ruby -I bindings/ruby/lib runner.rb ENDPOINT RETRIES TIMEOUT_MS
# Reads one request per line; writes each reply as "<byte length>\n<reply>\n".
require "vpoller"

endpoint, retries, timeout = ARGV
client = VPoller::Client.new(endpoint: endpoint, retries: Integer(retries), timeout: Integer(timeout))
$stdout.binmode
$stdin.each_line do |line|
  reply = client.run(line.chomp.force_encoding(Encoding::UTF_8))
  $stdout.write("#{reply.bytesize}\n", reply, "\n")
  $stdout.flush
end
client.close
