//! A check of a component's top-level imports and exports by name, made
//! before it is compiled: a component that imports an interface the
//! sandbox does not link, or that does not export the world's handler, is
//! refused at once rather than after seconds of compiling (a language
//! runtime's component is tens of megabytes). Types are checked by the
//! linker after compiling, as before.

use wasmparser::component_types::ComponentEntityType;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use super::component::{HANDLER_INTERFACE, WORLD_EXPORTS};
use super::error::SandboxError;
use super::wasi::LINKED;

/// The package of the world's own interfaces.
const WORLD_PACKAGE: &str = "weir:operator/";

/// Validates component `bytes` in full (types, function bodies) without
/// compiling them, as an upload does before it answers: invalid bytes are
/// refused at once, and so is a handler that lacks one of the world's
/// functions. Every proposal's features are allowed here, so a
/// component the engine would take is never refused; one using a feature
/// the engine lacks fails when it compiles.
pub(super) fn validate(bytes: &[u8], path: &str) -> Result<(), SandboxError> {
    let types = Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| SandboxError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    // The handler's functions, by name (their types are the linker's to
    // check, after compiling).
    let missing: Vec<String> = match types
        .component_item_for_export(HANDLER_INTERFACE)
        .map(|item| &item.ty)
    {
        Some(ComponentEntityType::Instance(id)) => {
            let handler = &types[*id];
            WORLD_EXPORTS
                .iter()
                .filter(|f| {
                    !matches!(
                        handler.exports.get(**f).map(|item| &item.ty),
                        Some(ComponentEntityType::Func(_))
                    )
                })
                .map(|f| format!("{HANDLER_INTERFACE}#{f}"))
                .collect()
        }
        _ => vec![HANDLER_INTERFACE.to_owned()],
    };
    match missing.is_empty() {
        true => Ok(()),
        false => Err(SandboxError::MissingExports {
            path: path.to_owned(),
            missing,
        }),
    }
}

/// Checks the import and export names of component `bytes` (`path` names
/// it in errors).
pub(super) fn check_names(bytes: &[u8], path: &str) -> Result<(), SandboxError> {
    let invalid = |e: wasmparser::BinaryReaderError| SandboxError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    };
    // Nesting depth: 1 is the component itself, deeper its inner modules
    // and components, whose imports the component satisfies itself.
    let mut depth = 0usize;
    let mut handler = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    let name = import.map_err(invalid)?.name.name;
                    if !allowed(name) {
                        return Err(SandboxError::Mismatch {
                            path: path.to_owned(),
                            message: format!(
                                "it imports `{name}`, which the sandbox does not provide (an operator reaches only the weir:operator world and WASI 0.2's cli, clocks, filesystem, io, random and sockets, with nothing behind them)"
                            ),
                        });
                    }
                }
            }
            Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    handler |= export.map_err(invalid)?.name.name == HANDLER_INTERFACE;
                }
            }
            _ => {}
        }
    }
    match handler {
        true => Ok(()),
        false => Err(SandboxError::MissingExports {
            path: path.to_owned(),
            missing: vec![HANDLER_INTERFACE.to_owned()],
        }),
    }
}

/// Whether an import of interface `name` (`pkg:ns/iface@version`) may be
/// linked: the world's own, or a WASI 0.2 interface the sandbox links.
fn allowed(name: &str) -> bool {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    interface.starts_with(WORLD_PACKAGE)
        || (LINKED.contains(&interface) && version.starts_with("0.2."))
}

/// A component whose only content is an import of instance `name`, for
/// tests of a refusal: the smallest binary that imports something.
#[cfg(test)]
pub(crate) fn component_importing(name: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    // Type section: one instance type with no declarations.
    bytes.extend([7, 3, 1, 0x42, 0]);
    // Import section: one import, a plain name, of an instance of type 0.
    let len = u8::try_from(name.len()).expect("a short name");
    bytes.extend([10, len + 5, 1, 0, len]);
    bytes.extend(name.as_bytes());
    bytes.extend([5, 0]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_the_sandbox_does_not_link_is_refused_naming_it() {
        let bytes = component_importing("wasi:http/outgoing-handler@0.2.0");
        let e = check_names(&bytes, "x.wasm").expect_err("refused");
        assert!(matches!(e, SandboxError::Mismatch { .. }), "{e}");
        assert!(
            e.to_string().contains("`wasi:http/outgoing-handler@0.2.0`"),
            "{e}"
        );
    }

    #[test]
    fn the_world_and_linked_wasi_0_2_interfaces_are_allowed_and_nothing_else() {
        for ok in [
            "weir:operator/state@0.2.0",
            "wasi:io/streams@0.2.0",
            "wasi:cli/stderr@0.2.6",
            "wasi:random/random@0.2.3",
            "wasi:clocks/monotonic-clock@0.2.0",
            "wasi:filesystem/types@0.2.0",
            "wasi:sockets/tcp@0.2.0",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for refused in [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:io/streams@0.3.0",
            "wasi:io/streams",
            "other:pkg/iface@1.0.0",
        ] {
            assert!(!allowed(refused), "{refused}");
        }
    }

    #[test]
    fn bytes_that_are_no_component_are_invalid_not_a_panic() {
        for bytes in [&b"\0asm\x0d\0\x01\0\xff\xff"[..], b"\0asm\x0d\0\x01\0"] {
            assert!(check_names(bytes, "x.wasm").is_err());
        }
    }
}
