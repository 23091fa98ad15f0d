"""Every timeout, TTL and limit kobot uses, each named once with the reason it exists."""

from __future__ import annotations

DATA_DIR_DEFAULT = ".kobot"
"""Where the embedded Valkey, job artifacts and Terraform workspaces live unless configured."""

DATA_DIR_MODE = 0o700
"""The data dir holds the audit trail, emails, session webhooks and the secret key: its owner's only."""

DATA_FILE_MODE = 0o600
"""Files kobot and its embedded Valkey keep in the data dir are readable by their owner only."""

PROCESS_UMASK = 0o077
"""Set by `kobot` at start: every file and directory it (or a runner it starts) creates later is
owner-only, without each writer having to remember to chmod."""

VALKEY_MAXMEMORY_DEFAULT = "1gb"
"""The embedded Valkey's memory limit: past it writes fail (noeviction) instead of the machine swapping."""

HTTP_PORT_DEFAULT = 8080
"""Port of the FastAPI app (chat callbacks, Alertmanager webhook, REST API, metrics)."""

QUEUE_NAME = "kobot"
"""The RQ queue every cluster job goes through."""

JOB_TIMEOUT_SECONDS = 4 * 3600
"""Longest an RQ job may run: a 50-node create with image preloads stays well inside it."""

JOB_RESULT_TTL_SECONDS = 7 * 24 * 3600
"""How long RQ keeps a finished job's result; kobot's own job record is kept longer."""

JOB_LEASE_SECONDS = 15.0
"""A running job refreshes its lease this often times three; a lease that lapses means a dead worker."""

JOB_RECORD_TTL_SECONDS = 90 * 24 * 3600
"""How long a job's record, steps and events stay readable after the job ended."""

JOB_EVENTS_MAX = 5000
"""Events kept per job stream; older ones are trimmed, the step states are kept separately."""

GLOBAL_EVENTS_MAX = 100_000
"""Approximate length cap of the stream the notifier consumes."""

PROGRESS_EDIT_INTERVAL_SECONDS = 1.0
"""At most one edit per progress message per this many seconds; platforms throttle edits harder."""

NOTIFIER_BLOCK_MS = 200
"""How long the notifier blocks on the event stream before looking at pending throttled edits."""

NOTIFIER_CLAIM_IDLE_MS = 30_000
"""Events a crashed notifier read but never acknowledged are claimed again after this idle time."""

NOTIFIER_DRAIN_SECONDS = 10.0
"""On stop, a notifier keeps delivering what the event stream still holds (a cancelled job's final state)
this long before it lets go; what is left then waits for the next process (NOTIFIER_CLAIM_IDLE_MS)."""

NOTIFIER_DRAIN_BLOCK_MS = 100
"""While draining, a read that finds nothing new within this long means the stream is delivered."""

CHAT_DELIVERY_ATTEMPTS = 8
"""A direct reply the chat refuses is retried this many times with backoff, then given up (and logged);
job progress and alerts are kept in Redis and retried until delivered."""

CHAT_DELIVERY_BACKOFF_SECONDS = 0.5
"""First retry delay of a failed chat delivery; doubles each attempt up to the cap below."""

CHAT_DELIVERY_BACKOFF_CAP_SECONDS = 30.0
"""Largest delay between two delivery attempts."""

ANSIBLE_PEXPECT_TIMEOUT = 0.2
"""ansible-runner polls the cancel callback this often (its default of 5 s makes cancel slow)."""

ANSIBLE_CANCEL_GRACE_SECONDS = 0.5
"""Time ansible-playbook gets after SIGTERM to stop its workers before the runner kills it."""

ANSIBLE_ARTIFACTS_KEEP = 200
"""Job artifact directories kept under the data directory; the oldest are removed first."""

CANCEL_POLL_SECONDS = 0.2
"""How often a running Python step looks at its job's cancel flag."""

SSH_WAIT_TIMEOUT_SECONDS = 600.0
"""How long a job waits for every host to answer on SSH before the step fails."""

SSH_PROBE_INTERVAL_SECONDS = 1.0
"""Pause between two SSH reachability probes of one host."""

REDIS_SOCKET_TIMEOUT_SECONDS = 10.0
"""A store call that gets no answer this long fails instead of freezing the chat loop (longest block: 1 s)."""

REDIS_START_TIMEOUT_SECONDS = 10.0
"""How long kobot waits for its store (the embedded Valkey or KOBOT_REDIS_URL's) to answer before the start
fails."""

REDIS_PROBE_SECONDS = 3.0
"""Longest one try of that wait takes to connect or to get PING's answer before the next try."""

EMBEDDED_VALKEY_STOP_SECONDS = 5.0
"""How long the embedded Valkey gets to write its AOF and exit after SIGTERM before it is killed."""

EMBEDDED_VALKEY_CHECK_SECONDS = 1.0
"""How often a kobot process looks whether its embedded Valkey still runs (a dead one is started again)."""

EMBEDDED_VALKEY_RESTART_BACKOFF_CAP_SECONDS = 30.0
"""Longest pause between two attempts to start again an embedded Valkey that keeps failing to start."""

TEXT_MAX_COMMAND_CHARS = 2000
"""Longer chat text is refused before parsing: no command is that long."""

SUGGESTION_CUTOFF = 0.6
"""difflib ratio from which a mistyped word gets a 'did you mean'."""

TERRAFORM_PREVIEW_TIMEOUT_SECONDS = 120.0
"""A Terraform preview (`plan cluster`, the create approval) gets this long, then its process is killed."""

TERRAFORM_PREVIEWS_MAX = 4
"""Terraform previews one kobot process runs at once; more are refused (each is a Terraform run)."""

OFFLINE_REPOSITORY_TIMEOUT_SECONDS = 3.0
"""Per request to a cluster's offline repository when `upgrade` asks whether it holds a version: the
answer comes back in chat, so a repository that does not answer in this time refuses the upgrade."""

OFFLINE_REPOSITORY_DEADLINE_SECONDS = 6.0
"""The whole question to an offline repository (index lookups, downloads) ends within this, however
slowly the repository sends: `upgrade` answers in chat only after it."""

OFFLINE_INDEX_MAX_BYTES = 64 * 1024 * 1024
"""Largest package index (decompressed) read from an offline repository; a bigger one is refused."""

KUBECTL_DEADLINE_SECONDS = 8.0
"""A chat `kubectl` read (key decryption, every API request, formatting) ends within this, so an API server
that does not answer is reported in chat before 10 s instead of holding the reply."""

KUBECTL_CONNECT_TIMEOUT_SECONDS = 3.0
"""Connect timeout of one `kubectl` API request; a dead address fails this fast, without retries."""

KUBECTL_REPLY_LINES_MAX = 40
"""Lines of `kubectl` output one chat reply shows; the rest is counted with a hint how to narrow it."""

KUBECTL_LINE_CHARS_MAX = 160
"""A longer output line (a log line, an event message) is cut here so one line cannot fill a reply."""

KUBECTL_LOG_TAIL_DEFAULT = 50
"""Log lines `kubectl logs` fetches when no --tail is given."""

KUBECTL_LOG_TAIL_MAX = 500
"""Most log lines one `kubectl logs` may ask for; more belongs in a log system, not a chat."""

HANDLERS_LOAD_DELAY_SECONDS = 1.0
"""How long after its start `kobot serve` attaches every command's handler and starts its in-process worker
(or its recovery sweep alone) and schedulers: by then it answers, and a command that comes sooner attaches
the handlers itself."""

JOBS_START_RETRY_SECONDS = 5.0
"""Pause before the in-process worker's (or the lone recovery sweep's) start is tried again while the store
does not answer."""

AFTER_START_LOADS_WAIT_SECONDS = 30.0
"""Longest serve's handler load waits for the other loads set off a moment after the start (the alert
pipeline's build, the schedulers' and the jobs' start) before it builds the models imported by then and
freezes the heap. Bounded: the jobs' start is tried again for as long as the store does not answer."""

JOBS_START_STOP_WAIT_SECONDS = 10.0
"""Longest a stop waits for the in-process worker's start under way before it goes on stopping everything
else (the worker, once stopped, does not start)."""

KUBECTL_LOG_MAX_BYTES = 512 * 1024
"""Most bytes of log one `kubectl logs` asks the API server for (`limitBytes`): 500 lines of a pod that
writes megabyte lines must not be read whole to show a chat reply."""

KUBE_READ_MAX_BYTES = 32 * 1024 * 1024
"""Largest answer kobot reads from a cluster's API server for one request; a bigger one is refused
instead of being held in memory (a 5,000-pod list page is a few MB)."""

KUBECTL_LIST_LIMIT = 5000
"""Objects one `kubectl get` reads at most (a `limit` on the list call), so a huge cluster cannot stall a
read; the reply says when the list was cut."""

UPGRADE_PLAN_BATCHES_SHOWN = 10
"""Worker batches an upgrade plan lists one by one; the rest are counted (a 500-worker plan stays short)."""

BACKUP_SCHEDULER_INTERVAL_SECONDS = 30.0
"""How often the backup scheduler looks for schedules that are due; a run starts at most this late."""

BACKUP_KEEP_MAX = 1000
"""Most backups one schedule keeps (`keep 14`); older ones of that schedule's target are deleted."""

BACKUP_TRANSFER_TIMEOUT_SECONDS = 600.0
"""Longest one upload or download of a snapshot to or from an off-host target may take."""

BACKUP_CONNECT_TIMEOUT_SECONDS = 10.0
"""Connect (and SSH handshake) timeout of an off-host backup target."""

BACKUPS_LISTED_MAX = 20
"""Backups `list backups` shows, newest first; the rest are counted."""

HEALTH_CHECK_DEADLINE_SECONDS = 20.0
"""Longest one health check (巡检) may take, API reads, TLS handshakes and etcd included; past it the
reply says which parts did not answer instead of waiting on a stalled API server."""

HEALTH_CHECK_ETCD_SECONDS = 10.0
"""Bound of the etcd part of a health check: etcdctl's 3 s dial plus its 5 s command timeout, and margin."""

HEALTH_TLS_TIMEOUT_SECONDS = 5.0
"""Connect-and-handshake limit when a health check reads a serving certificate (API server, etcd)."""

HEALTH_POD_RESTARTS_WARNING = 5
"""A container restarted this often counts as a warning even while it runs (it keeps crashing)."""

HEALTH_CERT_WARNING_DAYS = 30
"""A certificate expiring within this many days is a warning in a health check."""

HEALTH_CERT_CRITICAL_DAYS = 7
"""A certificate expiring within this many days (or expired) is critical in a health check."""

HEALTH_KUBELET_SKEW_MINORS_MAX = 3
"""Minor versions a kubelet may lag the API server (Kubernetes' skew policy since 1.28); more is critical."""

HEALTH_FINDINGS_SHOWN_MAX = 25
"""Findings a health-check card lists one by one; the rest are counted (a sick big cluster stays short)."""

HEALTH_SCHEDULER_INTERVAL_SECONDS = 30.0
"""How often the health-check scheduler looks for checks that are due and certificates to look at."""

HEALTH_LIST_PAGE_SIZE = 500
"""Objects a health check asks the API server for per list request (`limit`, then `continue`)."""

HEALTH_LIST_OBJECTS_MAX = 10_000
"""Nodes, pods or PVCs a health check reads of one kind; past it the list is cut and the card says so."""

HEALTH_CHECKS_CONCURRENT_MAX = 4
"""`check cluster` requests that may run at once in one process; more are answered "busy, try again"."""

HEALTH_CHECK_DEADLINE_MARGIN_SECONDS = 2.0
"""Past the check's own deadline, how long the chat waits for its thread to hand the report back."""

CERT_NOTICE_DAYS_MAX = 365
"""A notice threshold further ahead than a year would be posted for every kubeadm certificate at once."""

CERT_EXPIRY_NOTICE_DAYS = (30, 14, 7)
"""Days before a certificate expires when `notify … certificate` channels hear of it, each threshold once."""

CERT_WATCH_INTERVAL_SECONDS = 6 * 3600.0
"""How often the certificates of a running cluster without a scheduled health check are looked at."""

CERT_RENEW_BEFORE_DAYS = 30
"""A renewal's read-back fails when a certificate still expires within this many days (the playbooks'
kube_cert_renew_before_days, which a site's ansible_extra_vars may change for both)."""

IMPORT_PROBE_TIMEOUT_SECONDS = 8.0
"""An imported cluster's API (version, nodes, network) is read within this, so an unreachable address is
answered before 10 s."""

IMPORT_KUBECONFIG_MAX_BYTES = 1024 * 1024
"""Largest kubeconfig `kobot import` accepts; an admin kubeconfig is a few kilobytes."""

SSH_USER_MAX_CHARS = 32
"""Longest account name useradd takes (`workers.cluster_import_ssh.SSH_USER` says the same)."""

SSH_KEY_MAX_BYTES = 16 * 1024
"""Largest private key an import or attach-ssh accepts; an RSA 8192 key in OpenSSH format is ~6.5 KiB."""

SSH_PROOF_TIMEOUT_SECONDS = 10.0
"""One imported node's SSH connect and host key (ssh's ConnectTimeout); slower is named as not answering."""

SSH_PROOF_LOGIN_GRACE_SECONDS = 5.0
"""What the login and `true` may take past the connect, before the ssh client is stopped."""

SSH_PROOF_WORKERS_MAX = 32
"""Imported nodes whose SSH access is proven at the same time."""

KEYGEN_TIMEOUT_SECONDS = 10.0
"""`ssh-keygen -y` reading an imported cluster's key back; it takes milliseconds."""

CIS_SCAN_HISTORY_MAX = 20
"""CIS scans kept per cluster; the oldest is dropped past it (a weekly scan covers about five months)."""

CIS_SCAN_TIMEOUT_SECONDS = 600
"""Longest kube-bench may run on one node; its checks read files and processes, seconds in practice."""

CIS_REPORT_MAX_BYTES = 4 * 1024 * 1024
"""A node's kube-bench JSON larger than this is refused unread (a full master report is ~200 KB)."""

CIS_REMEDIATION_CHARS_MAX = 300
"""A failed check's remediation text is cut to this many characters in chat; the stored scan keeps it."""

CIS_FAILED_SHOWN_MAX = 15
"""Failed checks a scan card lists one by one; the rest are counted."""

CIS_SCHEDULER_INTERVAL_SECONDS = 30.0
"""How often the scan scheduler looks for scans that are due and scheduled scans that have finished."""

CIS_CHANGES_SHOWN_MAX = 10
"""Newly failing and fixed checks a CIS change card names one by one each; the rest are counted."""

CIS_NODES_NAMED_MAX = 3
"""Nodes named for one check in a CIS change line; past it the line says "on N nodes"."""

CHANNEL_BINDING_CACHE_SECONDS = 1.0
"""How long a process reuses a channel's binding it read: every command reads it (twice for some) on the
event loop; a bind or unbind in this process is seen at once, one in another process within this."""


AUTOHEAL_AFTER_SECONDS_DEFAULT = 600
"""How long a worker stays NotReady before autoheal replaces it: a reboot or a kubelet restart is back
well inside it."""

AUTOHEAL_AFTER_SECONDS_MIN = 120
"""The shortest `after=` autoheal takes: kubelet marks a node NotReady after 40 s, so anything near that
replaces nodes that only blinked."""

AUTOHEAL_AFTER_SECONDS_MAX = 7 * 24 * 3600
"""The longest `after=`: past a week a person has long looked at the node."""

AUTOHEAL_MAX_UNHEALTHY_PERCENT_DEFAULT = 20
"""Past this share of NotReady nodes a cluster has an outage, not a node failure: autoheal pages people
instead of replacing nodes."""

DRY_RUN_TASKS_SHOWN = 4
"""Task names a dry run's final message lists per install stage that would change; the rest are counted."""
