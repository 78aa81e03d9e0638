# frozen_string_literal: true

require "ffi"

module VPoller
  # The C functions of libvpoller, attached as they are declared in vpoller.h.
  #
  # The library is the file named by VPOLLER_LIB when that is set, else the
  # one on the system library path (where `make install` puts it), else the
  # repository's own build in target/release.
  module LibVPoller
    extend FFI::Library

    REPO_BUILD = File.expand_path("../../../../target/release/libvpoller.so", __dir__)

    def self.candidates
      explicit = ENV.fetch("VPOLLER_LIB", "")
      return [explicit] unless explicit.empty?

      [FFI.map_library_name("vpoller"), "libvpoller.so.0", REPO_BUILD]
    end

    begin
      ffi_lib candidates
    rescue LoadError => e
      raise LoadError, "libvpoller not found (tried #{candidates.join(', ')}); build it with `make` " \
                       "or set VPOLLER_LIB to the path of libvpoller.so: #{e.message}"
    end

    OK = 0
    ERR_NO_REPLY = 1
    ERR_INVALID_ARGUMENT = 2
    ERR_INVALID_REPLY = 3
    ERR_ZMQ = 4
    ERR_INTERNAL = 5
    ERR_VSPHERE = 6

    # Options of vpoller_client_set_option.
    CLIENT_CURVE_SERVER_KEY = 1
    CLIENT_CURVE_PUBLIC_KEY = 2
    CLIENT_CURVE_SECRET_KEY = 3
    CLIENT_CURVE_SECRET_KEY_FILE = 4

    # Options of vpoller_agent_set_option.
    AGENT_PORT = 1
    AGENT_CA_FILE = 2
    AGENT_FINGERPRINT = 3
    AGENT_INSECURE = 4
    AGENT_CONNECT_TIMEOUT_MS = 5
    AGENT_TIMEOUT_MS = 6
    AGENT_CACHE_TTL_S = 7
    AGENT_MIRROR = 8
    AGENT_MIRROR_IDLE_S = 9
    AGENT_MIRROR_MAX_VALUES = 10

    # Requests wait for the network: release the GVL so other threads run.
    attach_function :vpoller_client_new, %i[string int int], :pointer, blocking: true
    attach_function :vpoller_client_free, [:pointer], :void, blocking: true
    attach_function :vpoller_client_set_option, %i[pointer int string], :int
    attach_function :vpoller_client_curve_public_key, [:pointer], :pointer
    attach_function :vpoller_try_run, %i[pointer string pointer], :int, blocking: true
    attach_function :vpoller_free_string, [:pointer], :void
    attach_function :vpoller_last_status, [], :int
    attach_function :vpoller_last_error, [], :string
    attach_function :vpoller_reply_success, [:string], :int
    attach_function :vpoller_status_str, [:int], :string
    attach_function :vpoller_version, [], :string

    attach_function :vpoller_agent_new, %i[string string string], :pointer, blocking: true
    attach_function :vpoller_agent_set_option, %i[pointer int string], :int, blocking: true
    attach_function :vpoller_agent_connect, [:pointer], :int, blocking: true
    attach_function :vpoller_agent_run, %i[pointer string], :pointer, blocking: true
    attach_function :vpoller_agent_free, [:pointer], :void, blocking: true
    attach_function :vpoller_agent_tasks, [], :string
  end
end
