# frozen_string_literal: true

require_relative "spawned"

# Starts the repository's stand-in vPoller Proxy (tests/standin, built by
# `make test`) on a free loopback port and stops it by pid.
module StandIn
  BINARY = ENV.fetch("VPOLLER_STANDIN") do
    File.expand_path("../../../target/release/vpoller-standin", __dir__)
  end

  # Yields the endpoint of a fresh stand-in; stops it afterwards, also on failure.
  def self.run(&block)
    Spawned.run(BINARY, "--workers", "2", what: "the stand-in proxy", &block)
  end
end
