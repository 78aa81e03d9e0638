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
# With the proxy's CURVE public key the requests travel encrypted:
#
#   client = VPoller::Client.new(endpoint: "tcp://vpoller01:10123",
#                                curve_server_key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
#                                curve_secret_key_file: "/etc/vpoller/client.key")
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

    # The CURVE keywords and their libvpoller options, in the order they are
    # set (a public key is checked against the secret key set before it).
    CURVE_OPTIONS = {
      curve_secret_key_file: LibVPoller::CLIENT_CURVE_SECRET_KEY_FILE,
      curve_secret_key: LibVPoller::CLIENT_CURVE_SECRET_KEY,
      curve_public_key: LibVPoller::CLIENT_CURVE_PUBLIC_KEY,
      curve_server_key: LibVPoller::CLIENT_CURVE_SERVER_KEY
    }.freeze
    private_constant :CURVE_OPTIONS

    # endpoint: e.g. "tcp://localhost:10123"; retries: attempts in all;
    # timeout: milliseconds each attempt waits for the reply (0 or less: the
    # defaults, as in libvpoller).
    #
    # CURVE (nil or "": unset; keys are 40 characters of Z85):
    # curve_server_key, the proxy's public key: requests travel encrypted
    # and authenticated, and only that proxy can read or answer them (a proxy
    # without CURVE, or one that refuses the client, gives no reply).
    # curve_secret_key_file, a file holding the client's secret key as
    # `vpoller-proxy keygen FILE` writes it (readable by its owner only), or
    # curve_secret_key, the key itself; curve_public_key, the client's public
    # key, checked against the secret key (not needed). Without a secret key
    # the client makes a fresh key pair (#curve_public_key shows it).
    # A key that is not one, or a public key that is not the secret key's,
    # raises ArgumentError naming the keyword.
    def initialize(endpoint:, retries: DEFAULT_RETRIES, timeout: DEFAULT_TIMEOUT, curve_server_key: nil,
                   curve_public_key: nil, curve_secret_key: nil, curve_secret_key_file: nil)
      raise TypeError, "endpoint must be a String, not #{endpoint.class}" unless endpoint.is_a?(String)
      raise TypeError, "retries must be an Integer, not #{retries.class}" unless retries.is_a?(Integer)
      raise TypeError, "timeout must be an Integer, not #{timeout.class}" unless timeout.is_a?(Integer)

      raise ArgumentError, "retries out of range: #{retries}" unless INT_RANGE.cover?(retries)
      raise ArgumentError, "timeout out of range: #{timeout}" unless INT_RANGE.cover?(timeout)

      curve = Client.curve_texts(curve_server_key: curve_server_key, curve_public_key: curve_public_key,
                                 curve_secret_key: curve_secret_key, curve_secret_key_file: curve_secret_key_file)
      raw = LibVPoller.vpoller_client_new(endpoint.encode(Encoding::UTF_8), retries, timeout)
      raise ArgumentError, "cannot use endpoint #{endpoint.inspect}: #{LibVPoller.vpoller_last_error}" if raw.null?

      @endpoint = endpoint
      @retries = retries
      @timeout = timeout
      @handle = Handle.new(raw, LibVPoller.method(:vpoller_client_free), "vPoller client")
      apply_curve(curve)
    end

    # The client's CURVE public key (Z85) once curve_server_key is set: the
    # one given, or that of the fresh key pair it made, for the proxy's list
    # of allowed clients; nil without CURVE.
    def curve_public_key
      @handle.use do |handle|
        key = LibVPoller.vpoller_client_curve_public_key(handle)
        # NULL and OK: no server key set.
        next nil if key.null? && LibVPoller.vpoller_last_status == LibVPoller::OK
        raise NoMemoryError, LibVPoller.vpoller_last_error if key.null?

        Handle.take_string(key)
      end
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

    # The CURVE keywords given (not nil) as UTF-8 texts, checked for type.
    def self.curve_texts(**keywords)
      keywords.compact.to_h do |name, value|
        raise TypeError, "#{name} must be a String, not #{value.class}" unless value.is_a?(String)

        [name, value.encode(Encoding::UTF_8)]
      rescue EncodingError => e
        raise ArgumentError, "#{name} cannot be converted to UTF-8: #{e.message}"
      end
    end

    private

    # Sets the CURVE options; a refused one closes the client and raises
    # ArgumentError with the library's reason.
    def apply_curve(curve)
      CURVE_OPTIONS.each do |name, option|
        @handle.set_option(:vpoller_client_set_option, name, option, curve[name]) if curve.key?(name)
      end
    end
  end

  # The version of the loaded libvpoller.
  def self.library_version
    LibVPoller.vpoller_version
  end
end
