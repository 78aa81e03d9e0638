# frozen_string_literal: true

require "json"
require_relative "vpoller/version"
require_relative "vpoller/lib_vpoller"
require_relative "vpoller/handle"
require_relative "vpoller/agent"

# Ruby client for vPoller, the distributed VMware vSphere poller, over libvpoller.
#
#   client = VPoller::Client.new(endpoint: "tcp://localhost:10123")
#   puts client.run(method: "vm.discover", hostname: "vc01.example.org")
#
# and the vSphere agent, which runs the tasks in this process (VPoller::Agent).
module VPoller
  # A client of one vPoller Proxy endpoint; may be shared by threads.
  class Client
    # close releases the client's sockets once running calls are done.
    include Closable

    # py-vpoller's defaults.
    DEFAULT_RETRIES = 3
    DEFAULT_TIMEOUT = 3000

    attr_reader :endpoint, :retries, :timeout

    INT_RANGE = (-(2**31)..((2**31) - 1)).freeze
    private_constant :INT_RANGE

    # endpoint: e.g. "tcp://localhost:10123"; retries: attempts in all;
    # timeout: milliseconds each attempt waits for the reply (0 or less: the
    # defaults, as in libvpoller).
    def initialize(endpoint:, retries: DEFAULT_RETRIES, timeout: DEFAULT_TIMEOUT)
      raise TypeError, "endpoint must be a String, not #{endpoint.class}" unless endpoint.is_a?(String)
      raise TypeError, "retries must be an Integer, not #{retries.class}" unless retries.is_a?(Integer)
      raise TypeError, "timeout must be an Integer, not #{timeout.class}" unless timeout.is_a?(Integer)

      raise ArgumentError, "retries out of range: #{retries}" unless INT_RANGE.cover?(retries)
      raise ArgumentError, "timeout out of range: #{timeout}" unless INT_RANGE.cover?(timeout)

      raw = LibVPoller.vpoller_client_new(endpoint.encode(Encoding::UTF_8), retries, timeout)
      raise ArgumentError, "cannot use endpoint #{endpoint.inspect}: #{LibVPoller.vpoller_last_error}" if raw.null?

      @endpoint = endpoint
      @retries = retries
      @timeout = timeout
      @handle = Handle.new(raw, LibVPoller.method(:vpoller_client_free), "vPoller client")
    end

    # Sends msg (a Hash, or a JSON object as a String) and returns vPoller's
    # reply String (UTF-8) exactly as the worker sent it. When no reply comes
    # after all attempts, returns py-vpoller's failure result
    # {"success": 1, "msg": "Did not receive response, aborting..."}.
    # Raises ArgumentError for a message that is not a JSON object.
    def run(msg)
      text = Handle.message_text(msg)
      @handle.use do |handle|
        reply_out = FFI::MemoryPointer.new(:pointer)
        status = LibVPoller.vpoller_try_run(handle, text, reply_out)
        reason = LibVPoller.vpoller_last_error if status != LibVPoller::OK
        reply = Handle.take_string(reply_out.read_pointer)
        raise ArgumentError, reason if status == LibVPoller::ERR_INVALID_ARGUMENT

        reply
      end
    end

    # Like #run, and returns the reply parsed as a Hash.
    def run_hash(msg)
      JSON.parse(run(msg))
    end

    def inspect
      "#<VPoller::Client endpoint=#{@endpoint.inspect} retries=#{@retries} timeout=#{@timeout}" \
        "#{closed? ? ' closed' : ''}>"
    end
  end

  # The version of the loaded libvpoller.
  def self.library_version
    LibVPoller.vpoller_version
  end
end
