# frozen_string_literal: true

require "json"

module VPoller
  # Raised when a closed client or agent is used.
  class ClosedError < IOError; end

  # close and closed? of an object that keeps its libvpoller object in a
  # Handle (@handle): the object is released once closed and the calls still
  # running on it are done; using it afterwards raises VPoller::ClosedError.
  # Closing twice is fine.
  module Closable
    def close
      @handle.close
    end

    def closed?
      @handle.closed?
    end
  end

  # Owns one libvpoller object (a client or an agent) for a Ruby object that
  # may be shared by threads: counts the calls running on it, so that #close
  # never frees it under one of them.
  class Handle
    def initialize(raw, free, what)
      @pointer = FFI::AutoPointer.new(raw, free)
      @what = what
      @lock = Mutex.new
      @active = 0
      @closed = false
    end

    # Yields the raw pointer, counted in; raises ClosedError once closed.
    def use
      pointer = @lock.synchronize do
        raise ClosedError, "closed #{@what}" if @closed

        @active += 1
        @pointer
      end
      begin
        yield pointer
      ensure
        @lock.synchronize do
          @active -= 1
          release if @closed && @active.zero?
        end
      end
    end

    # Sets one option through setter (:vpoller_client_set_option or
    # :vpoller_agent_set_option); a refused one closes the object and raises
    # ArgumentError "name: the library's reason".
    def set_option(setter, name, option, text)
      status = use { |pointer| LibVPoller.public_send(setter, pointer, option, text) }
      return if status == LibVPoller::OK

      reason = LibVPoller.vpoller_last_error
      close
      raise ArgumentError, "#{name}: #{reason}"
    end

    # Frees the object once the calls still running are done. Twice is fine.
    def close
      @lock.synchronize do
        return if @closed

        @closed = true
        release if @active.zero?
      end
      nil
    end

    def closed?
      @closed
    end

    # A message (a Hash, or a JSON object as a String) as UTF-8 JSON text.
    def self.message_text(msg)
      case msg
      when Hash then JSON.generate(msg)
      when String then msg.encoding == Encoding::UTF_8 ? msg : msg.encode(Encoding::UTF_8)
      else raise TypeError, "message must be a Hash or a JSON String, not #{msg.class}"
      end
    rescue EncodingError => e
      raise ArgumentError, "message cannot be converted to UTF-8: #{e.message}"
    end

    # Copies a string libvpoller returned into a Ruby String and frees it.
    def self.take_string(pointer)
      raise NoMemoryError, "libvpoller could not allocate the reply" if pointer.null?

      pointer.read_string.force_encoding(Encoding::UTF_8)
    ensure
      LibVPoller.vpoller_free_string(pointer) unless pointer.null?
    end

    private

    def release
      @pointer.free
      @pointer = nil
    end
  end
end
