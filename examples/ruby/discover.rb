# The vPoller API documentation's Ruby example, line for line over the
# libvpoller binding (bindings/ruby) instead of ffi-rzmq.
#
# Usage: ruby -I bindings/ruby/lib examples/ruby/discover.rb [endpoint [vsphere-host]]
require 'json'
require 'rubygems'
require 'vpoller'
msg = {:method => "vm.discover", :hostname => ARGV[1] || "vc01.example.org"}
puts "Connecting to vPoller ..."
client = VPoller::Client.new(endpoint: ARGV[0] || "tcp://localhost:10123")
puts "Sending task request to vPoller ..."
result = client.run(msg.to_json)
puts "Received reply from vPoller: #{result}"
