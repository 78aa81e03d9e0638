# The vPoller API documentation's local example in Ruby over libvpoller: run
# vPoller tasks in this process, straight against a vSphere host, with no
# proxy or worker.
#
# Usage: ruby -I bindings/ruby/lib examples/ruby/local.rb HOST[:PORT] USER PASSWORD [CA-FILE]
#        (CA-FILE: a PEM file of the CA that signed the host's certificate)
require 'vpoller'

host, user, pwd, ca_file = ARGV
abort "usage: local.rb HOST[:PORT] USER PASSWORD [CA-FILE]" unless pwd

agent = VPoller::Agent.new(user: user, pwd: pwd, host: host, ca_file: ca_file)
agent.connect
result = agent.vm_discover({})
puts "vm.discover: #{result['msg']}: #{result['result'].map { |vm| vm['name'] }.join(', ')}"
result = agent.vm_get(name: result['result'].first['name'], properties: ['runtime.powerState'])
puts "vm.get: #{result['result']}"
agent.close
