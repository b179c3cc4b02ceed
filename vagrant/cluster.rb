# frozen_string_literal: true

# The one cluster description the lab and Vagrant both read: the example inventories
# inventory/lab-TOPOLOGY.yaml (hosts, their addresses, groups, vars, `pattern:`). The lab tests run
# them on nspawn hosts h1..hN at 10.231.0.(10+N); the Vagrantfile makes one VM per host of the same
# file, on its own isolated libvirt network 10.231.8.0/24, the host keeping its last octet
# (h1 = 10.231.0.11 in the lab, 10.231.8.11 here) and getting a MAC made from it, which the network's
# DHCP answers with that fixed address. vagrant/inventory writes the apim-provision inventory for the
# VMs from the same file, so a host, group or var added to a lab inventory reaches both.
#
# Run as a script it prints what it read (`ruby vagrant/cluster.rb hosts [TOPOLOGY]`), the libvirt
# network (`network-xml`) or the topologies (`topologies`): what vagrant/host and the tests use.

require "yaml"

module ApimCluster
  REPO = File.expand_path("..", __dir__)
  DEFAULT_TOPOLOGY = "active-active"
  # The lab's subnet (tests/lab/lab) and the Vagrant cluster's: the lab must not share its subnet.
  LAB_PREFIX = "10.231.0."
  PREFIX = "10.231.8."
  GATEWAY = "#{PREFIX}1"
  NETMASK = "255.255.255.0"
  NETWORK = "apimvagrant"
  BRIDGE = "apimvag0"
  # Groups of hosts that run no product node: their VMs get the smaller memory.
  SERVICE_GROUPS = %w[db lb nfs_server].freeze

  # One VM of the cluster: a host of the description.
  Machine = Struct.new(:name, :lab_address, :address, :mac, :groups, :memory, keyword_init: true) do
    def product_node?
      !(groups - SERVICE_GROUPS).empty?
    end
  end

  # The topologies offered: one per lab inventory.
  def self.topologies
    Dir[File.join(REPO, "inventory", "lab-*.yaml")].map { |f| File.basename(f, ".yaml").delete_prefix("lab-") }.sort
  end

  def self.inventory_path(topology)
    File.join(REPO, "inventory", "lab-#{topology}.yaml")
  end

  # The lab's address of a host, mapped onto the Vagrant network (last octet kept).
  def self.vagrant_address(lab_address)
    octet = lab_address.delete_prefix(LAB_PREFIX)
    unless lab_address.start_with?(LAB_PREFIX) && octet.match?(/\A\d+\z/) && (2..254).cover?(octet.to_i)
      raise ArgumentError, "address #{lab_address} is not a host of the lab's #{LAB_PREFIX}0/24"
    end

    PREFIX + octet
  end

  def self.mac(address)
    format("52:54:00:a1:08:%02x", address.split(".").last.to_i)
  end

  # The lab's subnet replaced by the cluster's in every string of the description (addresses and
  # vars such as a database's client host pattern `10.231.0.%`).
  def self.to_vagrant_net(value)
    case value
    when String then value.gsub(LAB_PREFIX, PREFIX)
    when Array then value.map { |v| to_vagrant_net(v) }
    when Hash then value.transform_values { |v| to_vagrant_net(v) }
    else value
    end
  end

  # A lab inventory read as the cluster of one topology.
  class Description
    attr_reader :topology, :path, :data, :machines

    def initialize(topology = ENV.fetch("APIM_TOPOLOGY", DEFAULT_TOPOLOGY))
      unless ApimCluster.topologies.include?(topology)
        raise ArgumentError, "APIM_TOPOLOGY=#{topology}: no inventory/lab-#{topology}.yaml " \
                             "(topologies: #{ApimCluster.topologies.join(', ')})"
      end

      @topology = topology
      @path = ApimCluster.inventory_path(topology)
      @data = YAML.safe_load(File.read(@path))
      groups = @data.fetch("groups", {}) || {}
      @machines = (@data.fetch("hosts", {}) || {}).map do |name, h|
        lab = (h || {}).fetch("address") { raise ArgumentError, "#{@path}: host #{name} has no address" }
        address = ApimCluster.vagrant_address(lab)
        member_of = groups.keys.select { |g| member?(groups, g, name, 0) }
        m = Machine.new(name: name, lab_address: lab, address: address, mac: ApimCluster.mac(address),
                        groups: member_of)
        m.memory = Integer(m.product_node? ? ENV.fetch("APIM_MEMORY", "1536") : ENV.fetch("APIM_SERVICE_MEMORY", "768"))
        m
      end
    end

    # The apim-provision inventory for the VMs in `reach` (name => {address, user, port,
    # identity_file}): the description's pattern, vars and secrets on the cluster's subnet, each
    # VM's own ssh settings, host keys checked against `known_hosts`, groups cut down to those VMs.
    def inventory(reach, known_hosts)
      inv = ApimCluster.to_vagrant_net(@data.reject { |k, _| %w[ssh hosts groups].include?(k) })
      inv["ssh"] = { "known_hosts" => known_hosts, "become" => true }
      inv["hosts"] = @machines.select { |m| reach.key?(m.name) }.to_h do |m|
        r = reach.fetch(m.name)
        unless r["address"] == m.address
          raise "#{m.name}: Vagrant reaches it at #{r['address']}, the description puts it at #{m.address}"
        end

        [m.name, { "address" => m.address, "user" => r["user"], "port" => r["port"],
                   "identity_file" => r["identity_file"] }]
      end
      inv["groups"] = (@data.fetch("groups", {}) || {}).to_h do |g, spec|
        spec = ApimCluster.to_vagrant_net(spec || {})
        [g, spec.merge("hosts" => (spec["hosts"] || []).select { |h| reach.key?(h) })]
      end
      inv
    end

    private

    def member?(groups, group, host, depth)
      raise ArgumentError, "#{@path}: groups nest too deep at #{group}" if depth > 16

      spec = groups[group] || {}
      (spec["hosts"] || []).include?(host) ||
        (spec["children"] || []).any? { |c| member?(groups, c, host, depth + 1) }
    end
  end

  # The cluster's libvirt network: isolated (no <forward>), no DNS, DHCP handing each host of every
  # topology its fixed address.
  def self.network_xml
    hosts = topologies.flat_map { |t| Description.new(t).machines }.map { |m| [m.mac, m.address] }.uniq.sort
    dhcp = hosts.map { |mac, ip| "      <host mac='#{mac}' ip='#{ip}'/>\n" }.join
    <<~XML
      <network>
        <name>#{NETWORK}</name>
        <bridge name='#{BRIDGE}' stp='off'/>
        <dns enable='no'/>
        <ip address='#{GATEWAY}' netmask='#{NETMASK}'>
          <dhcp>
            <range start='#{PREFIX}200' end='#{PREFIX}250'/>
      #{dhcp.chomp}
          </dhcp>
        </ip>
      </network>
    XML
  end
end

if $PROGRAM_NAME == __FILE__
  case ARGV[0]
  when "hosts"
    ApimCluster::Description.new(*ARGV[1..]).machines.each do |m|
      puts [m.name, m.lab_address, m.address, m.mac, m.groups.join(","), m.memory].join(" ")
    end
  when "network-xml" then print ApimCluster.network_xml
  when "topologies" then puts ApimCluster.topologies
  else
    warn "usage: ruby vagrant/cluster.rb hosts [TOPOLOGY] | network-xml | topologies"
    exit 2
  end
end
