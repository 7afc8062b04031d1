//! A component with only the `open` export of the Weir world: the host must
//! refuse it and name the missing exports.

wit_bindgen::generate!({
    inline: "
        package weir:partial;
        world partial {
            export open: func(config: list<tuple<string, string>>) -> result<_, string>;
        }
    ",
});

struct Partial;

impl Guest for Partial {
    fn open(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
}

export!(Partial);
