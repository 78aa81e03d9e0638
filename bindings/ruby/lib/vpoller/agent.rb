# frozen_string_literal: true

require "json"

module VPoller
  # Raised when the vSphere host cannot be reached, refuses the login or sends
  # a certificate that is not trusted.
  class VSphereError < StandardError; end

  # The vSphere agent: vPoller's tasks run in this process, straight against
  # one vCenter or ESXi host, with the replies a vPoller worker sends.
  #
  #   agent = VPoller::Agent.new(user: "root", pwd: "p4ssw0rd", host: "vc01.example.org")
  #   agent.connect
  #   agent.vm_discover({})                                   # => {"success" => 0, ...}
  #   agent.vm_get(name: "vm01", properties: ["runtime.powerState"])
  #
  # Every task has a method, its name with dots made underscores
  # (`vm.perf.metric.get` is #vm_perf_metric_get). Such a method takes the
  # message as a Hash, keywords, or both (keywords win); a keyword's
  # underscores become dashes (`counter_name:` is "counter-name").
  # One agent may be shared by threads; their tasks run in parallel.
  class Agent
    # close logs out and releases the agent once running tasks are done.
    include Closable

    # Option keywords and their libvpoller option numbers.
    OPTIONS = {
      port: LibVPoller::AGENT_PORT,
      ca_file: LibVPoller::AGENT_CA_FILE,
      fingerprint: LibVPoller::AGENT_FINGERPRINT,
      insecure: LibVPoller::AGENT_INSECURE,
      connect_timeout: LibVPoller::AGENT_CONNECT_TIMEOUT_MS,
      timeout: LibVPoller::AGENT_TIMEOUT_MS,
      cache_ttl: LibVPoller::AGENT_CACHE_TTL_S,
      mirror: LibVPoller::AGENT_MIRROR,
      mirror_idle: LibVPoller::AGENT_MIRROR_IDLE_S,
      mirror_max_values: LibVPoller::AGENT_MIRROR_MAX_VALUES
    }.freeze

    # The task names, as libvpoller reports them.
    TASKS = LibVPoller.vpoller_agent_tasks.split.freeze

    attr_reader :host, :user

    # user, pwd, host: the vSphere login (host may carry ":port").
    # Options (nil: the library's default): port; ca_file (a PEM file of CA
    # certificates) or fingerprint (the certificate's SHA-256 or SHA-1) in
    # place of the system's trusted roots; insecure: true to skip
    # verification; connect_timeout and timeout (one whole task) in
    # milliseconds; cache_ttl in seconds (0: no lookup cache); mirror: false
    # to ask the host on every request, exactly as py-vpoller does (true, the
    # default: a live mirror of the properties asked for answers them);
    # mirror_idle, how long a mirrored property nobody asks for stays, in
    # seconds (1 to 604800); mirror_max_values, the most property values the
    # mirror holds (1 to 100000000).
    # Nothing is sent until #connect or the first task.
    def initialize(user:, pwd:, host:, **options)
      { user: user, pwd: pwd, host: host }.each do |name, value|
        raise TypeError, "#{name} must be a String, not #{value.class}" unless value.is_a?(String)
      end
      unknown = options.keys - OPTIONS.keys
      raise ArgumentError, "unknown option: #{unknown.join(', ')}" unless unknown.empty?

      raw = LibVPoller.vpoller_agent_new(host.encode(Encoding::UTF_8), user.encode(Encoding::UTF_8),
                                         pwd.encode(Encoding::UTF_8))
      raise ArgumentError, "cannot make an agent for #{host.inspect}: #{LibVPoller.vpoller_last_error}" if raw.null?

      @host = host
      @user = user
      @handle = Handle.new(raw, LibVPoller.method(:vpoller_agent_free), "vSphere agent")
      apply_options(options)
    end

    # Logs in now, so that a wrong password, an unreachable host or an
    # untrusted certificate shows at once (tasks log in by themselves too).
    # Returns self; raises VPoller::VSphereError with the reason.
    def connect
      @handle.use do |pointer|
        status = LibVPoller.vpoller_agent_connect(pointer)
        raise VSphereError, LibVPoller.vpoller_last_error unless status == LibVPoller::OK
      end
      self
    end

    # Runs a task request (a Hash, or a JSON object as a String) and returns
    # the reply text a vPoller worker sends, failures included.
    def run(msg)
      text = Handle.message_text(msg)
      @handle.use do |pointer|
        reply = LibVPoller.vpoller_agent_run(pointer, text)
        reason = LibVPoller.vpoller_last_error if LibVPoller.vpoller_last_status == LibVPoller::ERR_INVALID_ARGUMENT
        text = Handle.take_string(reply)
        raise ArgumentError, reason if reason

        text
      end
    end

    # Like #run, and returns the reply parsed as a Hash.
    def run_hash(msg)
      JSON.parse(run(msg))
    end

    TASKS.each do |task|
      define_method(task.tr(".", "_")) do |msg = {}, **fields|
        run_hash(Agent.task_message(task, msg, fields))
      end
    end

    # The message for task: msg's fields, then the keyword fields, then the method.
    def self.task_message(task, msg, fields)
      raise TypeError, "message must be a Hash, not #{msg.class}" unless msg.is_a?(Hash)

      message = msg.transform_keys(&:to_s)
      fields.each { |key, value| message[key.to_s.tr("_", "-")] = value }
      message["method"] = task
      message
    end

    # Never shows the password.
    def inspect
      "#<VPoller::Agent host=#{@host.inspect} user=#{@user.inspect}#{closed? ? ' closed' : ''}>"
    end

    private

    def apply_options(options)
      options.each do |name, value|
        next if value.nil?

        @handle.set_option(:vpoller_agent_set_option, name, OPTIONS.fetch(name), option_text(name, value))
      end
    end

    def option_text(name, value)
      case name
      when :insecure, :mirror
        raise TypeError, "#{name} must be true or false, not #{value.class}" unless [true, false].include?(value)

        value ? "1" : "0"
      when :ca_file, :fingerprint
        raise TypeError, "#{name} must be a String, not #{value.class}" unless value.is_a?(String)

        value
      else
        raise TypeError, "#{name} must be an Integer, not #{value.class}" unless value.is_a?(Integer)

        value.to_s
      end
    end
  end
end
