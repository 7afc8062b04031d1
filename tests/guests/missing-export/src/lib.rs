//! A component that exports the Weir handler interface with only `open`:
//! the host must refuse it and name the missing functions.

wit_bindgen::generate!({
    inline: "
        package weir:operator@0.2.0;
        interface handler {
            open: func(config: list<tuple<string, string>>) -> result<_, string>;
        }
        world partial {
            export handler;
        }
    ",
});

struct Partial;

impl exports::weir::operator::handler::Guest for Partial {
    fn open(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
}

export!(Partial);
