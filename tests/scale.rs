//! The engine's own cost grows linearly with the number of hosts. Counted, not timed, so a loaded
//! machine cannot fail it: a counting allocator (this binary's only test, so nothing else allocates
//! meanwhile) counts the allocations and bytes of preparing (what `validate` does), of the plan walk
//! and of the apply walk for inventories of N, 2N and 4N `connection: local` hosts. Fixed costs
//! cancel in the increments: from 2N to 4N the count must grow about twice as much as from N to 2N;
//! four times would be quadratic (every host's state copied per host), eight cubic. What costs time
//! without allocating (a walk over every node per host) is not seen here; bench/scale times it.

use apim_provision::execute::{self, Mode, NodeReport, Sink};
use apim_provision::plan::{prepare, Options};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Allocations and allocated bytes since the binary started.
struct Counting {
    allocs: AtomicU64,
    bytes: AtomicU64,
}

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

impl Counting {
    fn count(&self, size: usize) {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
    }

    fn now(&self) -> [u64; 2] {
        [
            self.allocs.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        ]
    }
}

#[global_allocator]
static COUNTING: Counting = Counting {
    allocs: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
};

/// Allocations and bytes `f` took.
fn counted(f: impl FnOnce()) -> [u64; 2] {
    let [a, b] = COUNTING.now();
    f();
    let [a2, b2] = COUNTING.now();
    [a2 - a, b2 - b]
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Workers read the manager's registered key through `registered`, each waiting for it.
const CROSS_HOST_READS: &str = r#"
plays:
  - name: manager
    hosts: managers
    tasks:
      - name: key
        shell: { cmd: "echo key-of-{{ inventory_hostname }}" }
        register: key
  - name: workers
    hosts: workers
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: use key
        depends_on: [{ task: key, hosts: managers }]
        copy: { dest: "{{ root }}/key", content: "{{ registered['mgr1'].key.stdout }}\n" }
"#;

/// inventory/demo.yaml with `n` hosts (one manager, n-1 workers, as bench/scale makes them), each
/// worker with a secret of its own, running `playbook`, in a new directory `dir` (its hosts' files
/// under `dir/hosts`).
fn inventory(dir: &Path, n: usize, playbook: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = format!(
        "playbook: {}\nvars:\n  root: \"{{{{ inventory_dir }}}}/hosts/{{{{ inventory_hostname }}}}\"\n  product: wso2am\n  product_version: \"4.2.0\"\n  admin_password: \"demo-S3cret!\"\nhosts:\n  mgr1: {{ connection: local, vars: {{ port_offset: 0 }} }}\n",
        playbook.display()
    );
    for i in 1..n {
        s.push_str(&format!(
            "  wkr{i}: {{ connection: local, vars: {{ port_offset: {i}, node_password: \"pw-of-wkr{i}-0123456789abcdef0123456789abcdef0123456789abcdef\" }} }}\n"
        ));
    }
    s.push_str("groups:\n  managers: { hosts: [mgr1], vars: { profile: control-plane } }\n  workers:\n    vars: { profile: gateway-worker }\n    hosts:\n");
    for i in 1..n {
        s.push_str(&format!("      - wkr{i}\n"));
    }
    s.push_str("  gateway: { children: [managers, workers] }\n");
    let path = dir.join("inventory.yaml");
    std::fs::write(&path, s).unwrap();
    path
}

struct Quiet;
impl Sink for Quiet {
    fn done(&self, _report: &NodeReport) {}
}

/// What preparing, planning and applying `n` hosts cost: [prepare, plan, apply] × [allocations,
/// bytes].
fn cost(rt: &tokio::runtime::Runtime, dir: &Path, n: usize, playbook: &Path) -> [[u64; 2]; 3] {
    let inv = inventory(dir, n, playbook);
    let mut prepared = None;
    let prepare_cost = counted(|| {
        prepared = Some(prepare(&inv, &Options::default()).expect("prepares"));
    });
    let p = Arc::new(prepared.unwrap());
    assert_eq!(p.graph.hosts.len(), n);
    let walk = |mode| {
        counted(|| {
            let reports = rt
                .block_on(execute::run(
                    p.clone(),
                    mode,
                    execute::DEFAULT_FORKS,
                    Arc::new(Quiet),
                ))
                .reports;
            assert!(
                reports.iter().all(|r| r.outcome.succeeded()),
                "{n} hosts, {mode:?}: {:?}",
                reports.iter().find(|r| !r.outcome.succeeded())
            );
        })
    };
    [prepare_cost, walk(Mode::Plan), walk(Mode::Apply)]
}

#[test]
fn preparing_planning_and_applying_cost_grows_linearly_with_the_hosts() {
    let d = tempfile::tempdir().unwrap();
    let cross = d.path().join("cross-host-reads.yaml");
    std::fs::write(&cross, CROSS_HOST_READS).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = 32;
    for (name, playbook) in [
        ("demo", repo().join("playbooks/demo.yaml")),
        ("cross", cross),
    ] {
        // What the first run in the process pays once (lazily built statics, the runtime's threads)
        // is not what a host costs.
        cost(&rt, &d.path().join(format!("{name}-warm")), n, &playbook);
        let costs: Vec<_> = [n, 2 * n, 4 * n]
            .into_iter()
            .map(|hosts| {
                cost(
                    &rt,
                    &d.path().join(format!("{name}-{hosts}")),
                    hosts,
                    &playbook,
                )
            })
            .collect();
        for (step, what) in ["prepare", "plan", "apply"].into_iter().enumerate() {
            for (k, unit) in ["allocations", "bytes"].into_iter().enumerate() {
                let c: Vec<f64> = costs.iter().map(|c| c[step][k] as f64).collect();
                let growth = (c[2] - c[1]) / (c[1] - c[0]);
                assert!(
                    growth < 2.3,
                    "{name}: {what} {unit} for {n}, {}, {} hosts: {c:?}; from {} to {} hosts they \
                     grew {growth:.2} times as much as from {n} to {}: linear is 2, quadratic 4",
                    2 * n,
                    4 * n,
                    2 * n,
                    4 * n,
                    2 * n
                );
            }
        }
    }
}
