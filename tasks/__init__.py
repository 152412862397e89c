"""Tasks and the engine that runs them: dispatch of ready tasks, the exactly-once run ledger, leases, retries and
the sweep.

The engine in parts a reader can name, each importing only the ones above it in this list:

- ``models``, ``choices``: Task, Dependency, Phase, Run, Artifact, Question, Notification, and their transition tables.
- ``services``: single-entity writes; every status change through one ``*_transition`` that checks the table and
  records history in the same transaction. ``phase_gate``, ``acceptance`` and ``notifications`` sit beside them.
- ``timing``: the engine's timing, read from the settings.
- ``queue``: handing runs to django-q2 (the transports are its brokers and ``broker``).
- ``dispatch``: readiness, starting what is ready, what follows a finished task or a failed attempt.
- ``runtime``: the worker: claim, lease, run the agent, record, retry.
- ``recovery``: the sweep.
- ``broker``: the transports django-q2's cluster loads by name; they run the sweep while idle, so they come after it.
- ``cluster``: django-q2's cluster under a watchdog (``manage.py qcluster``).
- ``jobs``: the thin entry points the queue messages and schedules name.

The verbs people use (launch, approve, reject, ...) are one function each in the ``workflows`` package, above all of
this.

How a task runs:
1. ``dispatch.dispatch_ready`` (at launch, at every completion, and in the periodic sweep) moves a pending task whose
   prerequisites are done, whose phase is workable and whose mission is active to ``ready``; an agent's ready
   task gets a queued Run and is handed to django-q2 in the same transaction (the ORM brokers' queue row commits
   with it; Redis is told after the commit). A person's ready task waits in their inbox (``waiting_approval``).
2. A worker runs ``jobs.execute_run(run_id)`` (``runtime``). django-q2 delivers at least once, so the worker first
   *claims* the run with a conditional, row-locked update (``SKIP LOCKED`` on PostgreSQL): only a ``queued`` run
   can be claimed, and the claim carries a lease token and expiry that a heartbeat thread renews while the agent works.
3. The agent's outcome is recorded only by the holder of the current lease: a stale worker's late result is
   refused and the refusal recorded. A run whose lease expires (its worker died or stalled) is marked ``lost`` by
   the sweep (``recovery``) and the task retried as a new attempt, with backoff, up to its max attempts; then it
   fails and the owner is told.
4. A worker that has just recorded a run goes on with one run that recording queued (the task's dependent, in a
   chain) instead of handing it through the broker: it keeps that run's id, leaves its ``enqueued_at`` empty (so
   the sweep hands it on, a lease's time later, if the worker dies first) and claims it as soon as the recording
   commits. It does so only
   in the first ``GENESIS_CHAIN_SECONDS`` of a delivery, so long work still goes through the queue and other
   missions' runs are not kept waiting; 0 turns it off.
5. Cancel and timeout are cooperative first: the lease thread sets ``context.cancelled()``. An agent that is still
   working ``GENESIS_CANCEL_GRACE_SECONDS`` later is stopped hard: inside a django-q2 cluster worker the lease
   thread records ``run.worker_stopped`` and kills its own process (SIGKILL), and the cluster's sentinel spawns a
   fresh worker in its place, so the slot is back within seconds instead of at django-q2's own ``Q_TIMEOUT``. Run
   anywhere else (sync mode, ``run_mission``, a test) the process is never killed: ``run.cancel_ignored`` is
   recorded instead.
6. One queue message may carry several runs (a wide fan-out is sent as messages of up to ``GENESIS_BATCH_MAX``
   runs, so django-q2's own work is paid once per message, not per run; small fan-outs stay one run a message so
   every worker gets some). The worker that takes such a message *holds* its other runs (their
   ``lease_expires_at``, while still ``queued``, says until when) and runs them one after another, each claimed
   and recorded exactly like a single run. It gives the rest back to the queue as soon as one of them has run for
   ``GENESIS_HANDOFF_SECONDS`` (its lease thread does it, so other workers take them up while the long one works)
   or the delivery is ``GENESIS_CHAIN_SECONDS`` old. If the worker dies, its hold expires and the sweep hands the
   runs on.
7. Faults below the engine are got over without a person: a cluster that a dead process left unable to run anything
   (a queue lock it held) restarts itself (``cluster``); a run whose message a dead cluster held is sent again two
   leases after it was enqueued, once the broker holds no message no cluster has taken (``recovery``); a claim or
   a recording whose database connection was lost is tried again on a new connection (``runtime``), so neither
   spends an attempt.
"""
