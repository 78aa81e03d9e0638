# frozen_string_literal: true

# Ruby contenders: `ruby_loop.rb MODE ENDPOINT CALLS` prints seconds per call.
#
# MODE binding:          this project's VPoller::Client (bindings/ruby).
# MODE ffi-rzmq-snippet: the vPoller API documentation's ffi-rzmq snippet, per
#                        call as written: a context and a REQ socket each time.
# MODE ffi-rzmq-reused:  ffi-rzmq with one reused REQ socket (its best case,
#                        without the snippet's retries, which it has none of).
require "json"

mode, endpoint, calls = ARGV[0], ARGV[1], Integer(ARGV[2])
msg = { method: "vm.get", hostname: "vc01.example.org", name: "vm01", properties: ["runtime.powerState"] }

call =
  case mode
  when "binding"
    require "vpoller"
    client = VPoller::Client.new(endpoint: endpoint, retries: 3, timeout: 3000)
    -> { client.run(msg) }
  when "ffi-rzmq-snippet"
    require "ffi-rzmq"
    lambda do
      context = ZMQ::Context.new(1)
      socket = context.socket(ZMQ::REQ)
      socket.connect(endpoint)
      socket.send_string(msg.to_json)
      result = +""
      socket.recv_string(result)
      socket.close
      context.terminate
      result
    end
  when "ffi-rzmq-reused"
    require "ffi-rzmq"
    context = ZMQ::Context.new(1)
    socket = context.socket(ZMQ::REQ)
    socket.connect(endpoint)
    lambda do
      socket.send_string(msg.to_json)
      result = +""
      socket.recv_string(result)
      result
    end
  else
    abort "unknown mode #{mode.inspect}"
  end

20.times { call.call }
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
calls.times { abort "no reply" unless call.call.start_with?('{"success": 0') }
puts format("%.9f", (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) / calls)
