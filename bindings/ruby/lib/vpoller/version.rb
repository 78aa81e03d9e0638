# frozen_string_literal: true

module VPoller
  # The gem's version; the library's is VPoller::LibVPoller.vpoller_version.
  VERSION = "0.1.0"
end
