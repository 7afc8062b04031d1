//! A guest that misbehaves on purpose, chosen by config `mode`:
//! `loop` (never returns from `process`), `bomb` (allocates until memory runs
//! out), `trap` (panics in `process`), `trap-open` (panics in `open`),
//! `open-error` (returns an error from `open`), `hoard` (appends 1 MiB
//! values to keyed list state without end), `trap-at` (forwards elements,
//! but panics on the element whose value is config `value` while the wall
//! processing time is before config `before-ms`, ms since the Unix epoch: a failure
//! that a restart after that moment does not meet again), `slow` (forwards
//! each element after spinning config `ms` milliseconds), `drop` (forwards
//! every element but the one whose value is config `value`), `loop-at`
//! (forwards every element, but never returns from the one whose value is
//! config `value`), `timer-hog`
//! (registers a timer whose namespace is config `bytes` long), `timer-flood`
//! (registers timers with 4 KiB namespaces without end), `metric-name`
//! (declares a counter with a 1 MiB name in `open`), `log-flood` (logs
//! 10,000 lines per element, then forwards it), `ok` (forwards elements).

use weir_sdk::prelude::*;

struct Hostile {
    mode: String,
    hoard: Option<ListState<Vec<u8>>>,
    trap_value: Vec<u8>,
    /// `before-ms` of `trap-at`, `ms` of `slow`.
    millis: i64,
}

impl Operator for Hostile {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let mode = ctx.get("mode").unwrap_or("ok").to_owned();
        match mode.as_str() {
            "trap-open" => panic!("hostile guest: trap in open"),
            "metric-name" => {
                let name = "m".repeat(1 << 20);
                let _ = ctx.counter(&name);
                Err("the host took a 1 MiB metric name".to_owned())
            }
            "open-error" => Err("hostile guest: bad config".to_owned()),
            "hoard" => Ok(Hostile {
                mode,
                hoard: Some(ctx.list_state("hoard")),
                trap_value: Vec::new(),
                millis: 0,
            }),
            _ => Ok(Hostile {
                trap_value: ctx.get("value").unwrap_or("").as_bytes().to_vec(),
                millis: ctx
                    .get(match mode.as_str() {
                        "slow" => "ms",
                        "timer-hog" => "bytes",
                        _ => "before-ms",
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                mode,
                hoard: None,
            }),
        }
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        match self.mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("hostile guest: trap in process"),
            "slow" => {
                let until = ctx.processing_time() + self.millis;
                while ctx.processing_time() < until {
                    std::hint::spin_loop();
                }
                ctx.emit(e.key, e.value, e.timestamp);
            }
            "trap-at" => {
                let now = ctx.processing_time();
                if e.value == self.trap_value.as_slice() && now < self.millis {
                    panic!(
                        "hostile guest: trap at value {}",
                        String::from_utf8_lossy(e.value)
                    );
                }
                ctx.emit(e.key, e.value, e.timestamp);
            }
            "timer-hog" => {
                let n = usize::try_from(self.millis).ok().filter(|n| *n > 0);
                let namespace = vec![7u8; n.unwrap_or(1 << 20)];
                ctx.register_timer_in(TimeDomain::EventTime, &namespace, i64::MAX);
                ctx.emit(e.key, e.value, e.timestamp);
            }
            "timer-flood" => {
                let namespace = vec![7u8; 4096];
                let mut t = 0i64;
                loop {
                    ctx.register_timer_in(TimeDomain::EventTime, &namespace, t);
                    t += 1;
                }
            }
            "log-flood" => {
                for i in 0..10_000 {
                    ctx.log(Level::Info, &format!("hostile guest: line {i}"));
                }
                ctx.emit(e.key, e.value, e.timestamp);
            }
            "loop-at" => {
                let mut n = 0u64;
                while e.value == self.trap_value.as_slice() {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                ctx.emit(e.key, e.value, e.timestamp);
            }
            "drop" => {
                if e.value != self.trap_value.as_slice() {
                    ctx.emit(e.key, e.value, e.timestamp);
                }
            }
            "hoard" => {
                if let Some(list) = &self.hoard {
                    let big = vec![7u8; 1 << 20];
                    loop {
                        list.add(&big);
                    }
                }
            }
            _ => ctx.emit(e.key, e.value, e.timestamp),
        }
    }
}

export_operator!(Hostile);
