# The vPoller API documentation's Ruby example over ffi-rzmq, as users run it
# against a vPoller Proxy, asking for vm.get of a non-ASCII name.
#
# Usage: ruby ffi_rzmq_snippet.rb ENDPOINT VSPHERE-HOST
require 'json'
require 'rubygems'
require 'ffi-rzmq'

endpoint, host = ARGV
msg = {:method => "vm.get", :hostname => host, :name => "Zürich-ВМ-虚拟机", :properties => ["runtime.powerState"]}
puts "Connecting to vPoller ..."
context = ZMQ::Context.new(1)
socket = context.socket(ZMQ::REQ)
socket.connect(endpoint)
puts "Sending task request to vPoller ..."
socket.send_string(msg.to_json)
result = ''
socket.recv_string(result)
puts "Received reply from vPoller: #{result.force_encoding(Encoding::UTF_8)}"
socket.close
context.terminate
