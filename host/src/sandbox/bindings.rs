//! Host bindings of the `weir:operator/operator` world, generated from
//! `wit/operator.wit`. Every import may trap: a guest that misuses one
//! (keyed state on a non-keyed input, say) fails its task with a message.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operator",
    imports: { default: trappable },
});
