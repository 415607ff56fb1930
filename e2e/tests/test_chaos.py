"""Cluster-wide chaos with steady traffic and a migration in progress: the API server and
etcd restarted, the controller's leader killed mid-step. These disrupt every test that would
run beside them, so they carry the `chaos` marker and run alone, in e2e/test.sh's chaos phase.

The gateway serves from its caches, so a control-plane outage must cost no request; the
controller resumes from status, so no outage may move weights by more than one step or start
the migration over. Each scenario prints its figures (requests, failures, durations)."""

import json
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import REPO, SYSTEM_NAMESPACE, kubectl, kubectl_json, start_controller, wait_until
from migration import StatusSampler, command, events, rollout, shares, start_migration, status
from test_gateway_sdk import apply, backend
from traffic import Load, Replicas, figure, summarize

RESTART = REPO / "e2e" / "cluster" / "restart.sh"


def controller_ready(proc):
    try:
        return requests.get(f"{proc.url}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def leads(proc):
    """Whether this replica says it leads (its `switchyard_controller_leader` gauge)."""
    try:
        text = requests.get(f"{proc.url}/metrics", timeout=1).text
    except requests.RequestException:
        return False
    return any(line == "switchyard_controller_leader 1" for line in text.splitlines())


def lease_holder(replicas):
    """The replica whose identity (`<host>-<pid>`, the controller's default) holds the Lease."""
    r = kubectl("get", "lease", "switchyard-controller", "-o", "json", "--request-timeout=2s",
                namespace=SYSTEM_NAMESPACE, check=False)
    holder = json.loads(r.stdout)["spec"].get("holderIdentity") if r.returncode == 0 else None
    return next((p for p in replicas if holder and holder.endswith(f"-{p.proc.pid}")), None)


def leadership_claims(replicas):
    """The replica holding the Lease, and the names of those that say they lead."""
    holder = lease_holder(replicas)
    return holder and holder.name, [p.name for p in replicas if leads(p)]


def assert_one_leader(holder, claims):
    """Exactly the Lease's holder says it leads: a replica that lost the Lease must stand by
    (or exit, to be restarted), never carry on believing it leads."""
    assert holder is not None and claims == [holder], f"lease held by {holder}, leadership claimed by {claims}"


@pytest.fixture
def replicas(controller, rbac):
    """Two controller replicas in one election, as the chart runs them: the session's
    controller and a standby. Afterwards the session's controller leads alone again."""
    standby = start_controller(kubeconfig=rbac["controller"], name="controller-standby")
    wait_until(lambda: controller_ready(standby), timeout=30, what="standby /readyz")
    wait_until(lambda: lease_holder([controller, standby]), timeout=30, what="a leader")
    yield [controller, standby]
    standby.stop()
    try:
        wait_until(lambda: lease_holder([controller]) and leads(controller), timeout=15,
                   what="the session's controller to lead again")
    except AssertionError:
        # Dead, or alive without the lease and not campaigning for it: start it afresh so
        # the next test has a working controller.
        controller.restart()
        wait_until(lambda: lease_holder([controller]) and leads(controller), timeout=30,
                   what="the restarted session controller to lead")


class Kubelet:
    """Starts a controller replica again when it exits, as the kubelet does for a pod with
    restartPolicy Always: a leader that cannot renew its lease in time exits rather than risk
    two writers, so a long enough API outage ends it."""

    def __init__(self, procs, every=0.5):
        self.procs, self.restarts = procs, []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, args=(every,), daemon=True)
        self.thread.start()

    def run(self, every):
        while not self.stop_flag.wait(every):
            for p in self.procs:
                if p.proc.poll() is not None:
                    self.restarts.append((p.name, p.proc.returncode))
                    p.restart()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


def two_mocks(namespace, mocks):
    stable, candidate = mocks("openai"), mocks("openai")
    apply(namespace, backend("stable", stable, "gpt-4o"), backend("candidate", candidate, "gpt-4.1"))
    return stable, candidate


@pytest.mark.chaos
@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_control_plane_restart_costs_no_request_and_both_components_catch_up(
        component, replicas, namespace, gateway, mocks):
    two_mocks(namespace, mocks)
    before = start_migration(namespace, gateway, [("stable", 100)], [("candidate", 100)], rollout())
    assert shares(before["weights"]) == {"stable": 0.9, "candidate": 0.1}
    # The client balancer probes /readyz, as a Service would: a gateway that declared itself
    # unready during the outage would lose its traffic, and the requests would count as failed.
    client = Replicas([gateway])
    load = Load(client, "chat")
    sampler = StatusSampler(namespace)
    kubelet = Kubelet(replicas)
    try:
        time.sleep(3)
        t_signal = time.monotonic()
        restart = subprocess.run(["bash", str(RESTART), "--down", "3", component], capture_output=True,
                                 text=True, timeout=180)
        assert restart.returncode == 0, restart.stderr
        t_back = time.monotonic()
        # A change right after: the controller must carry it out, and the gateway route by it.
        cid = command(namespace, "promote")
        t_command = time.monotonic()
        done = wait_until(lambda: (st := status(namespace)).get("lastCommand") == cid and st, timeout=60,
                          what="the controller to carry out the promote")
        t_controller = time.monotonic()
        # The gateway's watches retry with client-go's backoff (0.8 s doubling to 30 s), so
        # after an outage its caches may lag by up to about 30 s; never longer.
        t_gateway = wait_until(lambda: load.first_share("candidate", 0.35, after=t_command), timeout=45,
                               what="the gateway to route by the promoted weights")
        time.sleep(2)
        leadership = leadership_claims(replicas)
    finally:
        load.stop()
        sampler.stop()
        kubelet.stop()
    print(restart.stderr.strip())
    figure(f"{component} restart: down {t_back - t_signal:.1f}s (SIGTERM to healthy, 3s of it stopped); "
           f"controller carried out a promote {t_controller - t_command:.1f}s after it was written, "
           f"gateway routed by it {max(0.0, t_gateway - t_controller):.1f}s later; "
           f"controller replicas restarted after losing the lease: {len(kubelet.restarts)}")
    counts = summarize(f"{component} restart, whole run", load.between())
    assert counts["failed"] == 0, f"the gateway serves from its caches: {counts}"
    assert counts["requests"] >= 200
    assert shares(done["weights"]) == {"stable": 0.5, "candidate": 0.5}, done["weights"]
    assert done["step"] == 2 and done["phase"] != "RolledBack"
    assert done["migrationStartedAt"] == before["migrationStartedAt"], "the same migration goes on"
    sampler.assert_no_jump()
    assert len(events(namespace, "MigrationStarted")) == 1
    assert_one_leader(*leadership)


@pytest.mark.chaos
def test_the_standby_takes_over_mid_step_and_the_migration_finishes(replicas, namespace, gateway, mocks):
    two_mocks(namespace, mocks)
    roll = rollout(step_duration="10s", interval="5s")
    first = start_migration(namespace, gateway, [("stable", 100)], [("candidate", 100)], roll)
    load = Load(gateway, "chat")
    sampler = StatusSampler(namespace)
    try:
        wait_until(lambda: status(namespace).get("step") == 2, timeout=60, what="step 2")
        time.sleep(3)
        before = status(namespace)
        assert_one_leader(*leadership_claims(replicas))
        leader = lease_holder(replicas)
        standby = next(p for p in replicas if p is not leader)
        t_kill = time.monotonic()
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        wait_until(lambda: lease_holder(replicas) is standby and leads(standby), timeout=30, interval=0.1,
                   what="the standby to take over")
        t_takeover = time.monotonic()
        # The kubelet brings the killed replica back; it must stand by.
        leader.restart()
        wait_until(lambda: controller_ready(leader), timeout=30, what="the restarted replica /readyz")
        final = wait_until(lambda: (st := status(namespace)).get("phase") == "Stable"
                           and shares(st.get("stable")) == {"candidate": 1.0} and st, timeout=120,
                           what="the migration to finish")
        t_done = time.monotonic()
        assert_one_leader(*leadership_claims(replicas))
        assert lease_holder(replicas) is standby, "the restarted replica stands by"
    finally:
        load.stop()
        sampler.stop()
    figure(f"leader SIGKILLed at step {before['step']}: standby led {t_takeover - t_kill:.1f}s later "
           f"(lease 4s); migration finished {t_done - t_kill:.1f}s after the kill")
    counts = summarize("leader killed mid-step, whole run", load.between())
    assert counts["failed"] == 0, counts
    sampler.assert_no_jump()
    steps = [s for _, s, _ in sampler.steps() if s]
    assert sorted(set(steps)) == [1, 2, 3], f"step 2 continued, then step 3: {sampler.steps()}"
    migrating = [st for _, st in sampler.samples if st.get("step")]
    assert {st["migrationStartedAt"] for st in migrating} == {first["migrationStartedAt"]}, \
        "the migration was never started over"
    # The step the leader died in continues: the new leader keeps its start time and weights.
    at_kill_step = [st for _, st in sampler.samples if st.get("step") == before["step"]]
    assert {st["stepStartedAt"] for st in at_kill_step} == {before["stepStartedAt"]}, "the step restarted"
    assert {json.dumps(st["weights"]) for st in at_kill_step} == {json.dumps(before["weights"])}
    expected = {1: {"stable": 0.9, "candidate": 0.1}, 2: {"stable": 0.5, "candidate": 0.5}, 3: {"candidate": 1.0}}
    for st in migrating:
        assert shares(st["weights"]) == expected[st["step"]], st
    assert len(events(namespace, "MigrationStarted")) == 1
    assert final["weights"] and shares(final["weights"]) == {"candidate": 1.0}
    lease = kubectl_json("get", "lease", "switchyard-controller", namespace="switchyard-system")
    assert lease["spec"]["leaseTransitions"] >= 1
