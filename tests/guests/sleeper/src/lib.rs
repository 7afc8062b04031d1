//! Sleeps for an hour in `process`. Sleeping is a blocking WASI call that
//! an epoch deadline cannot interrupt, so the host must refuse this
//! component when it loads it.

use weir_sdk::prelude::*;

struct Sleeper;

impl Operator for Sleeper {
    fn open(_ctx: &mut OpenContext) -> Result<Self, String> {
        Ok(Sleeper)
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        ctx.emit(e.key, e.value, e.timestamp);
    }
}

export_operator!(Sleeper);
