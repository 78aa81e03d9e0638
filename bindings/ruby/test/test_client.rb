# frozen_string_literal: true

require "minitest/autorun"
require "json"
require "socket"
require "tmpdir"
require "vpoller"
require_relative "standin"

class ClientTest < Minitest::Test
  NO_REPLY = '{"success": 1, "msg": "Did not receive response, aborting..."}'

  def around_stand_in(&block)
    StandIn.run(&block)
  end

  def echo(msg_text)
    "{\"success\": 0, \"msg\": \"Successfully retrieved object properties\", \"result\": [#{msg_text}]}"
  end

  def test_string_message_reply_is_verbatim
    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint)
      msg = '{"method": "vm.get", "hostname": "vc01", "name": "vm01", "properties": ["runtime.powerState"]}'
      reply = client.run(msg)
      assert_equal echo(msg), reply
      assert_equal Encoding::UTF_8, reply.encoding
      client.close
    end
  end

  def test_hash_message
    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint, retries: 3, timeout: 3000)
      msg = { method: "vm.discover", hostname: "vc01.example.org" }
      assert_equal echo(msg.to_json), client.run(msg)
      parsed = client.run_hash(msg)
      assert_equal 0, parsed["success"]
      assert_equal "vm.discover", parsed["result"][0]["method"]
    end
  end

  def test_non_ascii_names_round_trip
    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint)
      name = "Zürich-ВМ-虚拟机 \"q\""
      reply = client.run(method: "vm.get", hostname: "vc01", name: name)
      assert reply.valid_encoding?
      assert_equal name, JSON.parse(reply)["result"][0]["name"]
      assert_includes reply, "Zürich-ВМ-虚拟机"
      latin1 = "caf\xE9".dup.force_encoding(Encoding::ISO_8859_1)
      reply = client.run("{\"name\": \"#{latin1.encode(Encoding::UTF_8)}\"}".encode(Encoding::ISO_8859_1))
      assert_includes reply, "café"
    end
  end

  def test_nul_terminated_reply_is_trimmed
    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint)
      reply = client.run(method: "about", stand_in: { nul: true })
      assert reply.end_with?("}]}")
      refute_includes reply, "\0"
    end
  end

  def test_no_proxy_gives_the_vpoller_failure_within_retries_times_timeout
    port = TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
    client = VPoller::Client.new(endpoint: "tcp://127.0.0.1:#{port}", retries: 2, timeout: 200)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    assert_equal NO_REPLY, client.run(method: "about", hostname: "vc01")
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    # Both attempts waited their whole timeout (so there were two at least).
    assert_operator elapsed, :>=, 0.39
    # And then it gave up: only a hang takes this long, not a busy machine.
    assert_operator elapsed, :<, 30
  end

  def test_the_given_retries_and_timeout_are_used
    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint, retries: 2, timeout: 200)
      # Not more than two attempts: the stand-in ignores the first two copies
      # of this request and would answer a third (the default is 3 attempts).
      assert_equal NO_REPLY, client.run(method: "about", stand_in: { drop_first: 2 })
      # Not longer than 200 ms each: a reply 2 s late is not waited for (the
      # default 3000 ms would take it).
      assert_equal NO_REPLY, client.run(method: "about", stand_in: { delay_ms: 2000 })
    end
  end

  def test_bad_arguments
    assert_raises(ArgumentError) { VPoller::Client.new } # endpoint is required
    assert_raises(TypeError) { VPoller::Client.new(endpoint: nil) }
    assert_raises(TypeError) { VPoller::Client.new(endpoint: "tcp://127.0.0.1:1", retries: "3") }
    assert_raises(TypeError) { VPoller::Client.new(endpoint: "tcp://127.0.0.1:1", timeout: 1.5) }
    assert_raises(ArgumentError) { VPoller::Client.new(endpoint: "tcp://127.0.0.1:1", timeout: 2**40) }
    error = assert_raises(ArgumentError) { VPoller::Client.new(endpoint: "bogus") }
    assert_match(/connecting to the endpoint/, error.message)

    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint)
      assert_raises(TypeError) { client.run(42) }
      assert_raises(TypeError) { client.run(nil) }
      assert_raises(TypeError) { client.run(%w[vm get]) }
      error = assert_raises(ArgumentError) { client.run("vm.discover") }
      assert_match(/not valid JSON/, error.message)
      error = assert_raises(ArgumentError) { client.run("[1, 2]") }
      assert_match(/must be a JSON object, not an array/, error.message)
      error = assert_raises(ArgumentError) { client.run("{\"name\": \"\xFF\"}".b) }
      assert_match(/UTF-8/, error.message)
      assert_raises(ArgumentError) { client.run("{\"a\": \"\0\"}") }
      # The client still works after refusing bad input.
      assert_equal 0, client.run_hash(method: "about")["success"]
    end
  end

  def test_closed_client
    client = VPoller::Client.new(endpoint: "tcp://127.0.0.1:1")
    refute client.closed?
    client.close
    client.close
    assert client.closed?
    error = assert_raises(VPoller::ClosedError) { client.run(method: "about") }
    assert_match(/closed/, error.message)
    assert_kind_of IOError, error
  end

  def test_threads_share_one_client_in_parallel
    around_stand_in do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint, timeout: 30_000)
      threads = 8.times.map do |thread_id|
        Thread.new do
          10.times.map do |call|
            name = "vm-#{thread_id}-#{call}"
            reply = client.run_hash(method: "vm.get", name: name, stand_in: { delay_ms: 20 })
            reply["result"][0]["name"] == name
          end
        end
      end
      results = threads.flat_map(&:value)
      assert_equal 80, results.size
      assert results.all?, "a thread got another thread's reply"

      # The calls overlap. 16 calls that the stand-in answers after 2 s each
      # take 32 s one after another, whatever the machine, and about 2 s in
      # parallel. The bound sits far from both, so that a busy machine
      # cannot break it and calls made one at a time cannot pass it.
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      slow = 16.times.map do |n|
        Thread.new { client.run_hash(method: "about", n: n, stand_in: { delay_ms: 2000 })["result"][0]["n"] }
      end
      assert_equal (0...16).to_a, slow.map(&:value)
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      assert_operator elapsed, :>=, 2.0
      assert_operator elapsed, :<, 20
    end
  end

  def test_close_waits_for_running_calls
    around_stand_in do |endpoint|
      # On a busy machine the thread's call may not have started when close
      # comes; then it is refused as closed, and the test tries again. A
      # close that broke running calls would fail every try.
      reply = nil
      20.times do
        client = VPoller::Client.new(endpoint: endpoint)
        slow = Thread.new do
          client.run_hash(method: "about", stand_in: { delay_ms: 200 })
        rescue VPoller::ClosedError
          nil
        end
        sleep 0.05
        client.close
        reply = slow.value
        assert_raises(VPoller::ClosedError) { client.run(method: "about") }
        break if reply
      end
      refute_nil reply, "no call was running when close came"
      assert_equal 0, reply["success"]
    end
  end

  def open_fds
    Dir.children("/proc/self/fd").size
  end

  def test_clients_left_to_the_gc_are_freed
    around_stand_in do |endpoint|
      # Warm up: the library's process-wide context opens its own descriptors once.
      VPoller::Client.new(endpoint: endpoint).run(method: "about")
      GC.start
      before = open_fds
      200.times do
        client = VPoller::Client.new(endpoint: endpoint)
        assert_equal 0, client.run_hash(method: "about")["success"]
      end
      3.times { GC.start(full_mark: true, immediate_sweep: true) }
      sleep 0.2
      # Each unfreed client would hold a TCP connection and ZeroMQ descriptors.
      assert_operator open_fds, :<, before + 40
    end
  end

  def test_library_version
    assert_match(/\A\d+\.\d+\.\d+/, VPoller.library_version)
  end
end

# CURVE: the client's curve_* keywords, against the stand-in (which speaks
# plain ZMTP only) and against vpoller-proxy and vpoller-worker.
class CurveTest < Minitest::Test
  NO_REPLY = ClientTest::NO_REPLY
  RELEASE = File.expand_path("../../../target/release", __dir__)
  # A key of 40 Z85 characters (ZeroMQ's test vector).
  SERVER_KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

  def program(name)
    path = File.join(RELEASE, name)
    raise "#{path} is missing: run `make lib`" unless File.executable?(path)

    path
  end

  # `vpoller-proxy keygen FILE`: the public key it prints (the secret key is in FILE).
  def keygen(path)
    public_key = IO.popen([program("vpoller-proxy"), "keygen", path], &:read).strip
    raise "keygen failed" unless $?.success?

    public_key
  end

  def free_endpoint
    "tcp://127.0.0.1:#{TCPServer.open('127.0.0.1', 0) { |server| server.addr[1] }}"
  end

  # Yields a stack whose frontend speaks CURVE, letting in the client key in
  # "client.key" of dir only: the frontend's endpoint and public key. The
  # programs are stopped by pid afterwards.
  def curve_stack(dir)
    frontend_key = keygen(File.join(dir, "frontend.key"))
    File.write(File.join(dir, "clients"), "#{keygen(File.join(dir, 'client.key'))}\n")
    frontend = free_endpoint
    File.write(File.join(dir, "vpoller.conf"), <<~CONF)
      [proxy]
      frontend = #{frontend}
      backend = ipc://#{dir}/backend
      mgmt = ipc://#{dir}/proxy-mgmt
      frontend_curve_secret_key = #{dir}/frontend.key
      frontend_curve_allowed = #{dir}/clients
      [worker]
      db = #{dir}/vconnector.db
      proxy = ipc://#{dir}/backend
      mgmt = ipc://#{dir}/worker-mgmt
    CONF
    pids = []
    begin
      %w[vpoller-proxy vpoller-worker].each do |name|
        pids << Process.spawn(program(name), "-f", File.join(dir, "vpoller.conf"), "start",
                              out: File::NULL, err: File.join(dir, "#{name}.log"))
      end
      %w[proxy-mgmt worker-mgmt].each do |mgmt|
        status = VPoller::Client.new(endpoint: "ipc://#{dir}/#{mgmt}", retries: 100, timeout: 300)
                                .run_hash(method: "status")
        assert_equal 0, status["success"], "#{mgmt}: #{status}"
      end
      yield frontend, frontend_key
    ensure
      pids.each do |pid|
        Process.kill("KILL", pid)
        Process.wait(pid)
      end
    end
  end

  def test_malformed_keys_raise_at_once
    endpoint = "tcp://127.0.0.1:1"
    error = assert_raises(ArgumentError) { VPoller::Client.new(endpoint: endpoint, curve_server_key: "short") }
    assert_equal "curve_server_key: Invalid argument: the server's key: a CURVE public key must be 40 " \
                 "characters of Z85, not 5", error.message
    error = assert_raises(ArgumentError) do
      VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY, curve_secret_key: "#{SERVER_KEY[0, 39]}~")
    end
    assert_match(/\Acurve_secret_key: .*the client's key: .*'~' at position 40 is not a Z85 character/,
                 error.message)
    Dir.mktmpdir do |dir|
      public_key = keygen(File.join(dir, "client.key"))
      other = keygen(File.join(dir, "other.key"))
      error = assert_raises(ArgumentError) do
        VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY,
                            curve_secret_key_file: File.join(dir, "client.key"), curve_public_key: other)
      end
      assert_match(/\Acurve_public_key: .*the CURVE public key is not the secret key's/, error.message)
      # The file's key and its own public key go together.
      client = VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY,
                                   curve_secret_key_file: File.join(dir, "client.key"), curve_public_key: public_key)
      assert_equal public_key, client.curve_public_key
      File.chmod(0o644, File.join(dir, "other.key"))
      error = assert_raises(ArgumentError) do
        VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY,
                            curve_secret_key_file: File.join(dir, "other.key"))
      end
      assert_match(/\Acurve_secret_key_file: .*may be read by others \(mode 0644\)/, error.message)
    end
    error = assert_raises(ArgumentError) do
      VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY, curve_secret_key_file: "/no/such.key")
    end
    assert_match(/\Acurve_secret_key_file: .*cannot read the CURVE secret key file/, error.message)
    assert_raises(TypeError) { VPoller::Client.new(endpoint: endpoint, curve_server_key: 42) }
    assert_raises(TypeError) { VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY.to_sym) }
  end

  def test_good_keys_are_taken
    endpoint = "tcp://127.0.0.1:1"
    assert_nil VPoller::Client.new(endpoint: endpoint).curve_public_key
    # nil and "" leave CURVE off.
    assert_nil VPoller::Client.new(endpoint: endpoint, curve_server_key: nil).curve_public_key
    assert_nil VPoller::Client.new(endpoint: endpoint, curve_server_key: "").curve_public_key
    # A server key alone: a fresh key pair, the same for the client's life.
    client = VPoller::Client.new(endpoint: endpoint, curve_server_key: " #{SERVER_KEY}\n")
    fresh = client.curve_public_key
    assert_equal 40, fresh.size
    assert_equal fresh, client.curve_public_key
    refute_equal fresh, VPoller::Client.new(endpoint: endpoint, curve_server_key: SERVER_KEY).curve_public_key
    client.close
    assert_raises(VPoller::ClosedError) { client.curve_public_key }
  end

  def test_a_curve_client_gets_no_reply_from_a_plain_proxy
    StandIn.run do |endpoint|
      client = VPoller::Client.new(endpoint: endpoint, retries: 2, timeout: 300, curve_server_key: SERVER_KEY)
      assert_equal NO_REPLY, client.run(method: "about", hostname: "vc01")
      # Without the key the stand-in answers.
      assert_equal 0, VPoller::Client.new(endpoint: endpoint).run_hash(method: "about")["success"]
    end
  end

  def test_a_listed_key_is_served_and_a_fresh_one_is_not
    Dir.mktmpdir do |dir|
      curve_stack(dir) do |frontend, frontend_key|
        client = VPoller::Client.new(endpoint: frontend, retries: 1, timeout: 15_000, curve_server_key: frontend_key,
                                     curve_secret_key_file: File.join(dir, "client.key"))
        # The worker's answer for a host it does not know: the request got through.
        2.times do
          assert_equal({ "success" => 1, "msg" => "Unknown or missing agent name" },
                       client.run_hash(method: "about", hostname: "vc-unknown"))
        end
        stranger = VPoller::Client.new(endpoint: frontend, retries: 1, timeout: 500, curve_server_key: frontend_key)
        assert_equal NO_REPLY, stranger.run(method: "about", hostname: "vc-unknown")
        plain = VPoller::Client.new(endpoint: frontend, retries: 1, timeout: 500)
        assert_equal NO_REPLY, plain.run(method: "about", hostname: "vc-unknown")
      end
    end
  end
end

class ExampleTest < Minitest::Test
  ROOT = File.expand_path("../../..", __dir__)

  def test_discover_example_prints_the_documented_lines
    StandIn.run do |endpoint|
      lib = File.join(ROOT, "bindings/ruby/lib")
      output = IO.popen([RbConfig.ruby, "-I", lib, File.join(ROOT, "examples/ruby/discover.rb"), endpoint], &:read)
      assert $?.success?
      assert_equal [
        "Connecting to vPoller ...",
        "Sending task request to vPoller ...",
        'Received reply from vPoller: {"success": 0, "msg": "Successfully retrieved object properties", ' \
        '"result": [{"method":"vm.discover","hostname":"vc01.example.org"}]}'
      ], output.lines.map(&:chomp)
    end
  end
end
