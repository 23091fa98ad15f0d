"""Steps that add, drain and remove nodes: scale, remove and replace.

A node leaves only after its drain finished; the first drain that fails stops the job.
"""

from __future__ import annotations

from kobot import automation_values
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.cluster_spec import ClusterSpec, NodeRole
from kobot.clusters import ClusterRecord, NodeRecord, NodeState
from kobot.errors import StepFailedError
from workers import playbook_names
from workers.ansible.runner import KNOWN_HOSTS_FILE
from workers.cluster_inputs import inventory_path, load_balancer_secrets, play_vars, refusing_unsafe_values
from workers.cluster_steps import render_inventory_step, wait_for_ssh_of
from workers.context import StepContext
from workers.day2_ops.kube_access import drain_logger, drain_timeout, kube_for, kubeconfig_file
from workers.day2_ops.machines import apply_machines, creates_machines
from workers.day2_ops.progress import load_state, save_state, say
from workers.day2_ops.record_edits import cluster_store, find_node, mark_nodes, node_index, recount
from workers.ippool import IpPools
from workers.kube import NODE_READY_TIMEOUT_SECONDS
from workers.plan import ClusterPlan, NodePlan, plan_scale


# --- steps: drain and remove ----------------------------------------------------------------------
def cordon_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    if not state.remove:
        say(ctx, "no node leaves")
        return
    with kube_for(ctx) as kube:
        for name in state.remove:
            kube.cordon(name)
    say(ctx, f"cordoned {', '.join(state.remove)}")


def drain_step(ctx: StepContext) -> None:
    """Drain each leaving node in turn; the first that cannot be drained stops the job."""
    state = load_state(ctx)
    with kube_for(ctx) as kube:
        for name in state.remove:
            if name in state.drained:
                continue
            result = kube.drain(
                name,
                timeout=drain_timeout(ctx),
                should_cancel=ctx.should_cancel,
                on_event=drain_logger(ctx),
            )
            state.drained.append(name)
            save_state(ctx, state)
            say(ctx, f"{name} drained: {len(result.evicted)} pod(s) evicted, {len(result.skipped)} left")


def remove_step(ctx: StepContext) -> None:
    """Reset and delete drained nodes only, then drop them from the record (and their machines)."""
    _remove_drained(ctx, replacement_joins_after=False)


def _remove_drained(ctx: StepContext, *, replacement_joins_after: bool) -> None:
    state = load_state(ctx)
    if not state.remove:
        say(ctx, "no node leaves")
        return
    undrained = [name for name in state.remove if name not in state.drained]
    if undrained:
        raise StepFailedError(f"{', '.join(undrained)} is not drained; kobot never removes an undrained node")
    # A node leaves the record only after its reset: one no longer recorded was reset by an earlier
    # attempt of this step, and the inventory (rendered from the record) no longer holds it.
    recorded = {node.name for node in cluster_store(ctx).require(ctx.cluster).nodes}
    with refusing_unsafe_values(ctx.cluster, task="node_remove variables"):
        leaving = [automation_values.node_name(name) for name in state.remove if name in recorded]
    if leaving:
        with kubeconfig_file(ctx) as kubeconfig:
            ctx.run_playbook(
                playbook_names.NODE_REMOVE,
                inventory=inventory_path(ctx),
                extravars={
                    **play_vars(ctx),
                    "nodes_to_remove": leaving,
                    "kubeconfig_path": str(kubeconfig),
                    # the runner's own known_hosts: a removed node's key must not refuse its successor
                    "known_hosts_path": str(ctx.settings.job_artifacts_dir() / KNOWN_HOSTS_FILE),
                    # a replaced master leaves an even count behind until its successor joins
                    "replacement_joins_after": replacement_joins_after,
                },
            )
    with kube_for(ctx) as kube:
        for name in state.remove:
            kube.delete_node(name)
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    record.nodes = [node for node in record.nodes if node.name not in state.remove]
    recount(record)
    store.save(record)
    if creates_machines(record):
        apply_machines(ctx, record)

        IpPools(ctx.redis).release(cluster=ctx.cluster, nodes=state.remove)
    say(ctx, f"removed {', '.join(state.remove)}")


# --- steps: add -------------------------------------------------------------------------------------
def scale_plan_step(ctx: StepContext) -> None:
    record = cluster_store(ctx).require(ctx.cluster)
    workers = sorted((n for n in record.nodes if n.role == "worker"), key=lambda n: node_index(n.name))
    count, delta = ctx.params.get("count"), ctx.params.get("delta")
    target = int(count) if count is not None else len(workers) + int(delta or 0)
    state = load_state(ctx)
    if target < len(workers):
        state.remove = [node.name for node in reversed(workers[target:])]
        say(ctx, f"workers {len(workers)} → {target}: newest leave first: {', '.join(state.remove)}")
    elif target > len(workers):
        state.add = _plan_new_workers(ctx, record, target)
        say(ctx, f"workers {len(workers)} → {target}: adding {', '.join(state.add)}")
    else:
        say(ctx, f"{ctx.cluster} already has {target} workers")
    save_state(ctx, state)


def _plan_new_workers(ctx: StepContext, record: ClusterRecord, target: int) -> list[str]:

    try:
        spec = ClusterSpec.model_validate(
            {**record.spec.model_dump(), "name": record.name},
            context={ALLOW_LOCAL_HOSTS: ctx.settings.allow_local_hosts},
        )
        nodes = tuple(
            NodePlan(
                name=n.name,
                role=NodeRole(n.role),
                zone=n.zone,
                address=n.address,
                cpu=spec.node_sizes[NodeRole(n.role)].cpu,
                memory_mb=spec.node_sizes[NodeRole(n.role)].memory_mb,
                disk_gb=spec.node_sizes[NodeRole(n.role)].disk_gb,
                gpu=n.gpu,
            )
            for n in record.nodes
        )
        plan = ClusterPlan(spec=spec, nodes=nodes, vip=record.spec.api_vip)
        gpu_workers = ctx.params.get("gpu_workers")
        scale = plan_scale(
            plan=plan,
            workers=target,
            pools=IpPools(ctx.redis),
            gpu_workers=None if gpu_workers is None else int(gpu_workers),
        )
    except ValueError as exc:
        raise StepFailedError(
            f"cannot plan new workers for {ctx.cluster}: {exc}",
            error=f"on provider=manual add each machine with `add node {ctx.cluster} host=<address>`",
        ) from None
    store = cluster_store(ctx)
    record.nodes += [
        NodeRecord(name=n.name, role=n.role.value, address=n.address, zone=n.zone, gpu=n.gpu)
        for n in scale.add
    ]
    recount(record)
    store.save(record)
    return [node.name for node in scale.add]


def machines_step(ctx: StepContext) -> None:
    """IaaS clusters: make the machines match the record (Terraform creates or destroys per node)."""
    record = cluster_store(ctx).require(ctx.cluster)
    if not creates_machines(record):
        say(ctx, f"provider {record.provider}: kobot does not create these hosts")
        return
    apply_machines(ctx, record)


def wait_for_new_nodes_ssh_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    record = cluster_store(ctx).require(ctx.cluster)
    wait_for_ssh_of(ctx, [node for node in record.nodes if node.name in state.add])


def join_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    if not state.add:
        say(ctx, "no node joins")
        return
    with refusing_unsafe_values(ctx.cluster, task="node_add variables"):
        joining = [automation_values.node_name(name) for name in state.add]
    ctx.run_playbook(
        playbook_names.NODE_ADD,
        inventory=inventory_path(ctx),
        extravars={**play_vars(ctx), "nodes_to_add": joining},
        # node_add renders keepalived again on every master: without the password auth_pass is empty
        secrets=load_balancer_secrets(ctx),
    )


def ready_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    if not state.add:
        say(ctx, "no node joins")
        return
    with kube_for(ctx) as kube:
        for name in state.add:
            kube.wait_ready(name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel)
    mark_nodes(ctx, state.add, NodeState.READY)


def plan_added_node_step(ctx: StepContext) -> None:
    """`add node`: a manual cluster names the machine (`host=`); an IaaS one gets an address from the pool."""

    state = load_state(ctx)
    if state.add:
        return
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    role = str(ctx.params.get("role") or "worker")
    host = ctx.params.get("host")
    if role == "master" and not record.spec.api_vip:
        # kubeadm's endpoint (and the API certificate) of a cluster made without a VIP is its one
        # master's address; a second master would have no shared endpoint to join behind.
        raise StepFailedError(
            f"{ctx.cluster} has no API VIP, so it cannot get a second master",
            error="a cluster that may grow its control plane is created with masters=3 (which gets a VIP)",
        )
    name = _next_name(record, role)
    zone = next((n.zone for n in record.nodes if n.role == role and n.zone), "") or ""
    address = _new_address(
        ctx, record, name=name, zone=zone, host=host, how=f"`add node {ctx.cluster} host=<address>`"
    )
    gpu = role == "worker" and bool(ctx.params.get("gpu"))
    record.nodes.append(NodeRecord(name=name, role=role, address=address, gpu=gpu))
    recount(record)
    store.save(record)
    state.add = [name]
    save_state(ctx, state)
    say(ctx, f"{name} ({address}) joins as a {role}")


# --- steps: remove / replace one node ----------------------------------------------------------------
def pick_node_step(ctx: StepContext) -> None:
    record = cluster_store(ctx).require(ctx.cluster)
    node = find_node(record, str(ctx.params["node"]))
    if node.role == "master" and record.count("master") <= 1:
        raise StepFailedError(f"{node.name} is the only master of {ctx.cluster}; it cannot be removed")
    state = load_state(ctx)
    state.remove = [node.name]
    save_state(ctx, state)


def plan_replacement_step(ctx: StepContext) -> None:
    """A worker's successor is recorded now and joins before the old worker is drained (capacity first).
    A master's successor waits: the old master leaves etcd first (`master_leaves_first_step`), since a
    dead member still counts towards the majority a new member's join needs."""
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    state = load_state(ctx)
    if state.add:
        return
    old = find_node(record, str(ctx.params["node"]))
    if old.role == "master":
        refusal = master_leave_refusal(record, old)
        if refusal is not None:
            raise StepFailedError(refusal)
    name = _next_name(record, old.role)
    how = f"`replace node {old.name} on {ctx.cluster} host=<address>`"
    host = ctx.params.get("host")
    address = _new_address(ctx, record, name=name, zone=old.zone or "", host=host, how=how)
    successor = NodeRecord(name=name, role=old.role, address=address, zone=old.zone)
    state.add, state.remove = [name], [old.name]
    if old.role == "master":
        state.successors = [successor]
        save_state(ctx, state)
        say(ctx, f"{old.name} leaves etcd first, then {name} ({address}) joins in its place")
        return
    record.nodes.append(successor)
    store.save(record)
    save_state(ctx, state)
    say(ctx, f"{name} ({address}) replaces {old.name}: it joins before {old.name} is drained")


def master_leaves_first_step(ctx: StepContext) -> None:
    """A replaced master is cordoned, drained and removed (its etcd member taken out by a member that
    stays) before its successor enters the record and joins; a worker leaves later, after its successor."""
    state = load_state(ctx)
    if not state.successors:
        say(ctx, "a worker leaves after its successor is Ready")
        return
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    recorded = {node.name for node in record.nodes}
    if any(name in recorded for name in state.remove):
        for name in state.remove:
            refusal = master_leave_refusal(record, find_node(record, name))
            if refusal is not None:
                raise StepFailedError(refusal)
        render_inventory_step(ctx)
        cordon_step(ctx)
        drain_step(ctx)
        _remove_drained(ctx, replacement_joins_after=True)
        record = store.require(ctx.cluster)
    record.nodes += [node for node in state.successors if node.name not in {n.name for n in record.nodes}]
    recount(record)
    store.save(record)
    joining = ", ".join(node.name for node in state.successors)
    # nothing is left to leave after the successor joins; a retry resumes at the join
    state.remove, state.successors = [], []
    save_state(ctx, state)
    say(ctx, f"{joining} joins now that the old master left etcd")


ETCD_MEMBER_STATES = (NodeState.READY, NodeState.CHECKED)
"""Node states of masters that joined, so hold an etcd member (a planned one never did)."""


def etcd_quorum(members: int) -> int:
    """etcd's majority of `members`: the votes every write and every membership change needs."""
    return members // 2 + 1


def master_leave_refusal(record: ClusterRecord, node: NodeRecord) -> str | None:
    """Why taking `node` out of etcd would drop below quorum, or None: the masters that stay must alone
    hold the majority of the members there are now, as the leaving one may be dead."""
    members = [n for n in record.nodes if n.role == "master" and n.state in ETCD_MEMBER_STATES]
    if node not in members:
        return None
    staying = len(members) - 1
    if staying >= etcd_quorum(len(members)):
        return None
    return (
        f"{node.name} cannot leave etcd: {record.name} has {len(members)} etcd members, a membership "
        f"change needs {etcd_quorum(len(members))} of them and only {staying} would stay"
    )


def _next_name(record: ClusterRecord, role: str) -> str:
    same_role = [node_index(n.name) for n in record.nodes if n.role == role]
    return f"{record.name}-{role}-{max(same_role, default=0) + 1}"


def _new_address(
    ctx: StepContext, record: ClusterRecord, *, name: str, zone: str, host: object, how: str
) -> str:
    """The new node's address: the host a person named (checked), else one from the IaaS pool."""
    if host:
        with refusing_unsafe_values(ctx.cluster, task="check the new host"):
            address = automation_values.host_address(str(host), allow_local=ctx.settings.allow_local_hosts)
        if any(n.address == address for n in record.nodes):
            raise StepFailedError(f"{address} is already a node of {ctx.cluster}")
        return address
    if creates_machines(record):
        return IpPools(ctx.redis).reserve(cluster=ctx.cluster, nodes={name: zone})[name]
    raise StepFailedError(
        f"{ctx.cluster} runs on your own machines: say which one joins as {name}", error=how
    )
