# vm.get of runtime.powerState through the vPoller Proxy from Ruby, with the
# reply parsed into a Hash.
#
# Usage: ruby -I bindings/ruby/lib examples/ruby/vm_get.rb [endpoint [vsphere-host [vm]]]
require 'vpoller'

endpoint = ARGV[0] || "tcp://localhost:10123"
msg = {
  method: "vm.get",
  hostname: ARGV[1] || "vc01.example.org",
  name: ARGV[2] || "vm01",
  properties: ["runtime.powerState"]
}
client = VPoller::Client.new(endpoint: endpoint)
reply = client.run_hash(msg)
if reply["success"] == 0
  vm = reply["result"].first
  puts "#{vm['name']}: #{vm['runtime.powerState']}"
else
  abort "vPoller: #{reply['msg']}"
end
