# frozen_string_literal: true

require "minitest/autorun"
require "json"
require "rbconfig"
require "vpoller"
require_relative "vcsim"

class AgentTest < Minitest::Test
  def with_agent(**options)
    VCSim.run do |host, ca_file|
      agent = VPoller::Agent.new(user: "root", pwd: "p4ssw0rd", host: host, ca_file: ca_file, **options)
      begin
        yield agent, host, ca_file
      ensure
        agent.close
      end
    end
  end

  def test_documented_usage
    with_agent do |agent|
      assert_same agent, agent.connect
      result = agent.vm_discover({})
      assert_equal 0, result["success"]
      assert_equal "Successfully discovered objects", result["msg"]
      names = result["result"].map { |vm| vm["name"] }
      assert_includes names, "DC0_H0_VM0"
      assert_includes names, "Zürich-ВМ-虚拟机"
      reply = agent.vm_get(name: "Zürich-ВМ-虚拟机", properties: ["runtime.powerState"])
      assert_equal({ "success" => 0, "msg" => "Successfully retrieved object properties",
                     "result" => [{ "name" => "Zürich-ВМ-虚拟机", "runtime.powerState" => "poweredOn" }] }, reply)
    end
  end

  def test_every_task_has_a_method
    assert_equal 52, VPoller::Agent::TASKS.size
    VPoller::Agent::TASKS.each do |task|
      assert VPoller::Agent.method_defined?(task.tr(".", "_")), task
    end
  end

  def test_hash_and_keywords
    with_agent(timeout: 20_000, cache_ttl: 0) do |agent|
      samples = agent.host_perf_metric_get({ "name" => "nothing" }, name: "DC0_H0",
                                           counter_name: "cpu.usagemhz.megaHertz.average", max_sample: 2)
      assert_equal 0, samples["success"], samples.inspect
      assert_equal 2, samples["result"].size
      assert_equal({ "success" => 1, "msg" => "Cannot find object no-such-host" },
                   agent.host_get(name: "no-such-host", properties: ["name"]))
      assert_equal({ "success" => 1, "msg" => "Invalid task request" }, agent.vm_get(name: "DC0_H0_VM0"))
      assert_raises(TypeError) { agent.vm_discover("vm.discover") }
    end
  end

  def test_run_returns_the_worker_text
    with_agent do |agent|
      assert_equal '{"success": 0, "msg": "Successfully retrieved object properties", ' \
                   '"result": [{"name": "DC0_H0_VM0", "host": "DC0_H0"}]}',
                   agent.run(method: "vm.host.get", name: "DC0_H0_VM0")
      assert_equal 0, agent.run_hash('{"method": "about"}')["success"]
      assert_raises(ArgumentError) { agent.run("not\0text") }
      assert_raises(TypeError) { agent.run(["vm.discover"]) }
    end
  end

  def test_threads_share_one_agent
    with_agent do |agent|
      threads = Array.new(4) do
        Thread.new { Array.new(5) { agent.vm_get(name: "DC0_H0_VM0", properties: ["name"])["success"] } }
      end
      assert_equal [0] * 20, threads.flat_map(&:value)
    end
  end

  def test_untrusted_certificate_and_bad_options
    VCSim.run do |host, _ca_file|
      agent = VPoller::Agent.new(user: "root", pwd: "p4ssw0rd", host: host, timeout: 5000)
      error = assert_raises(VPoller::VSphereError) { agent.connect }
      assert_match(/not trusted/, error.message)
      assert_match(/ca_file/, error.message)
      refute_match(/p4ssw0rd/, agent.inspect)
      insecure = VPoller::Agent.new(user: "root", pwd: "p4ssw0rd", host: host, insecure: true)
      assert_equal 0, insecure.about({})["success"]
      assert_raises(ArgumentError) { VPoller::Agent.new(user: "r", pwd: "x", host: host, ca_file: "/no/such.pem") }
      assert_raises(ArgumentError) { VPoller::Agent.new(user: "r", pwd: "x", host: host, fingerprint: "zz") }
      assert_raises(ArgumentError) { VPoller::Agent.new(user: "r", pwd: "x", host: host, colour: "blue") }
      assert_raises(TypeError) { VPoller::Agent.new(user: "r", pwd: "x", host: host, timeout: "soon") }
      assert_raises(TypeError) { VPoller::Agent.new(user: "r", pwd: nil, host: host) }
      assert_raises(ArgumentError) { VPoller::Agent.new(user: "r", pwd: "x", host: "") }
    end
  end

  def test_mirror_options
    # Off, every task asks the host, as py-vpoller does; the sizes are taken.
    with_agent(mirror: false, mirror_idle: 60, mirror_max_values: 5000) do |agent|
      reply = agent.vm_get(name: "DC0_H0_VM0", properties: ["runtime.powerState"])
      assert_equal [{ "name" => "DC0_H0_VM0", "runtime.powerState" => "poweredOn" }], reply["result"]
    end
    with_agent(mirror: true, mirror_idle: 604_800, mirror_max_values: 100_000_000) do |agent|
      assert_equal 0, agent.about({})["success"]
    end
  end

  def test_bad_mirror_options
    make = ->(**options) { VPoller::Agent.new(user: "root", pwd: "x", host: "vc01.example.org", **options) }
    {
      { mirror_idle: 0 } => "mirror_idle: Invalid argument: VPOLLER_AGENT_MIRROR_IDLE_S wants a number of seconds from 1 to 604800",
      { mirror_idle: 604_801 } => "mirror_idle: Invalid argument: VPOLLER_AGENT_MIRROR_IDLE_S wants",
      { mirror_idle: -1 } => "mirror_idle: Invalid argument: VPOLLER_AGENT_MIRROR_IDLE_S wants",
      { mirror_max_values: 0 } =>
        "mirror_max_values: Invalid argument: VPOLLER_AGENT_MIRROR_MAX_VALUES wants a number of values from 1 to 100000000",
      { mirror_max_values: 100_000_001 } => "mirror_max_values: Invalid argument: VPOLLER_AGENT_MIRROR_MAX_VALUES wants"
    }.each do |options, reason|
      error = assert_raises(ArgumentError, options.inspect) { make.call(**options) }
      assert_includes error.message, reason
    end
    {
      { mirror: "off" } => "mirror must be true or false, not String",
      { mirror: 0 } => "mirror must be true or false, not Integer",
      { mirror_idle: "60" } => "mirror_idle must be an Integer, not String",
      { mirror_max_values: 1.5 } => "mirror_max_values must be an Integer, not Float"
    }.each do |options, reason|
      error = assert_raises(TypeError, options.inspect) { make.call(**options) }
      assert_includes error.message, reason
    end
    # nil is the library's default.
    make.call(mirror: nil, mirror_idle: nil, mirror_max_values: nil).close
  end

  def test_nothing_listening_and_closed
    agent = VPoller::Agent.new(user: "root", pwd: "x", host: "127.0.0.1:9", insecure: true, connect_timeout: 1000)
    error = assert_raises(VPoller::VSphereError) { agent.connect }
    assert_match(/cannot reach 127.0.0.1:9/, error.message)
    reply = agent.about({})
    assert_equal 1, reply["success"]
    assert_match(/\ATask about failed: cannot reach/, reply["msg"])
    agent.close
    agent.close
    assert agent.closed?
    assert_raises(VPoller::ClosedError) { agent.about({}) }
  end

  def test_local_example_script
    VCSim.run do |host, ca_file|
      lib = File.expand_path("../lib", __dir__)
      example = File.expand_path("../../../examples/ruby/local.rb", __dir__)
      output = IO.popen([RbConfig.ruby, "-I", lib, example, host, "root", "pw", ca_file], &:read)
      output.force_encoding(Encoding::UTF_8)
      assert $?.success?, output
      assert_match(/vm\.discover: Successfully discovered objects: .*Zürich-ВМ-虚拟机/, output)
      assert_match(/"runtime.powerState"=>"poweredOn"/, output)
    end
  end
end
