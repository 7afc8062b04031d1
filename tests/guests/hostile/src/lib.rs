//! A guest that misbehaves on purpose, chosen by config `mode`:
//! `loop` (never returns from `process`), `bomb` (allocates until memory runs
//! out), `trap` (panics in `process`), `trap-open` (panics in `open`),
//! `open-error` (returns an error from `open`), `hoard` (appends 1 MiB
//! values to keyed list state without end), `ok` (forwards elements).

use weir_sdk::prelude::*;

struct Hostile {
    mode: String,
    hoard: Option<ListState<Vec<u8>>>,
}

impl Operator for Hostile {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let mode = ctx.get("mode").unwrap_or("ok").to_owned();
        match mode.as_str() {
            "trap-open" => panic!("hostile guest: trap in open"),
            "open-error" => Err("hostile guest: bad config".to_owned()),
            "hoard" => Ok(Hostile {
                mode,
                hoard: Some(ctx.list_state("hoard")),
            }),
            _ => Ok(Hostile { mode, hoard: None }),
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
