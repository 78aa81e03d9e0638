# frozen_string_literal: true

require_relative "lib/vpoller/version"

Gem::Specification.new do |spec|
  spec.name = "vpoller"
  spec.version = VPoller::VERSION
  spec.summary = "Ruby client for vPoller over libvpoller"
  spec.description = "A thin ffi binding to libvpoller, the fast, sturdy client library for " \
                     "vPoller, the distributed VMware vSphere poller."
  spec.authors = ["libvpoller developers"]
  spec.license = "Apache-2.0"
  spec.files = Dir["lib/**/*.rb"]
  spec.require_paths = ["lib"]
  spec.required_ruby_version = ">= 2.7"
  spec.add_dependency "ffi", ">= 1.13"
  spec.add_development_dependency "minitest", ">= 5"
end
