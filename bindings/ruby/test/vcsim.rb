# frozen_string_literal: true

require "tmpdir"
require_relative "spawned"

# Starts govmomi's vSphere simulator (target/interop/vcsim, `make vcsim`) on a
# free loopback port and stops it by pid.
module VCSim
  BINARY = ENV.fetch("VPOLLER_VCSIM") do
    File.expand_path("../../../target/interop/vcsim", __dir__)
  end

  # Yields the simulator's host:port and the PEM file of its CA; stops it
  # afterwards, also on failure.
  def self.run
    Dir.mktmpdir("vpoller-vcsim") do |dir|
      ca_file = File.join(dir, "ca.pem")
      Spawned.run(BINARY, "-listen", "127.0.0.1:0", "-ca-out", ca_file, what: "the vSphere simulator") do |url|
        raise "the vSphere simulator printed #{url.inspect}" unless url.start_with?("https://")

        yield url.split("@").last.split("/").first, ca_file
      end
    end
  end
end
