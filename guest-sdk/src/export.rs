//! The macros that export an [`crate::Operator`] or a
//! [`crate::TwoInputOperator`] as the component's world.

/// Exports a type that implements [`crate::Operator`] as this component's
/// operator. Use it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export_operator {
    ($ty:ty) => {
        $crate::__export_handler!(
            $ty,
            open,
            process,
            process_second_unsupported,
            on_timer,
            close
        );
    };
}

/// Exports a type that implements [`crate::TwoInputOperator`] as this
/// component's operator. Use it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export_two_input_operator {
    ($ty:ty) => {
        $crate::__export_handler!(
            $ty,
            open_two,
            process_first,
            process_second,
            on_timer_two,
            close_two
        );
    };
}

/// Implements the world's `handler` interface with the given functions of
/// the SDK's runtime.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_handler {
    ($ty:ty, $open:ident, $process:ident, $second:ident, $timer:ident, $close:ident) => {
        #[doc(hidden)]
        struct __WeirExport;

        impl $crate::__bindings::exports::weir::operator::handler::Guest for __WeirExport {
            fn open(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>)
                -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::$open::<$ty>(config)
            }

            fn process(batch: $crate::__bindings::weir::operator::types::Batch) -> ::std::vec::Vec<u8> {
                $crate::__runtime::$process::<$ty>(batch)
            }

            fn process_second(batch: $crate::__bindings::weir::operator::types::Batch) -> ::std::vec::Vec<u8> {
                $crate::__runtime::$second::<$ty>(batch)
            }

            fn on_timer(timer: $crate::__bindings::weir::operator::types::Timer) {
                $crate::__runtime::$timer::<$ty>(timer)
            }

            fn close() {
                $crate::__runtime::$close::<$ty>()
            }
        }

        $crate::__bindings::__export_world!(__WeirExport with_types_in $crate::__bindings);
    };
}
