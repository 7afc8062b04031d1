//! The macros that export an [`crate::Operator`] or a
//! [`crate::TwoInputOperator`] as the component's world.

/// Exports a type that implements [`crate::Operator`] as this component's
/// operator. Use it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export_operator {
    ($ty:ty) => {
        #[doc(hidden)]
        struct __WeirExport;

        impl $crate::__bindings::exports::weir::operator::handler::Guest for __WeirExport {
            fn open(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>)
                -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::open::<$ty>(config)
            }

            fn process(batch: $crate::__bindings::weir::operator::types::Batch) -> ::std::vec::Vec<u8> {
                $crate::__runtime::process::<$ty>(batch)
            }

            fn process_second(batch: $crate::__bindings::weir::operator::types::Batch) -> ::std::vec::Vec<u8> {
                $crate::__runtime::process_second_unsupported::<$ty>(batch)
            }

            fn on_timer(timer: $crate::__bindings::weir::operator::types::Timer) {
                $crate::__runtime::on_timer::<$ty>(timer)
            }

            fn close() {
                $crate::__runtime::close::<$ty>()
            }
        }

        $crate::__bindings::__export_world!(__WeirExport with_types_in $crate::__bindings);
    };
}

/// Exports a type that implements [`crate::TwoInputOperator`] as this
/// component's operator. Use it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export_two_input_operator {
    ($ty:ty) => {
        #[doc(hidden)]
        struct __WeirExport;

        impl $crate::__bindings::exports::weir::operator::handler::Guest for __WeirExport {
            fn open(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>)
                -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::open_two::<$ty>(config)
            }

            fn process(batch: $crate::__bindings::weir::operator::types::Batch) -> ::std::vec::Vec<u8> {
                $crate::__runtime::process_first::<$ty>(batch)
            }

            fn process_second(batch: $crate::__bindings::weir::operator::types::Batch) -> ::std::vec::Vec<u8> {
                $crate::__runtime::process_second::<$ty>(batch)
            }

            fn on_timer(timer: $crate::__bindings::weir::operator::types::Timer) {
                $crate::__runtime::on_timer_two::<$ty>(timer)
            }

            fn close() {
                $crate::__runtime::close_two::<$ty>()
            }
        }

        $crate::__bindings::__export_world!(__WeirExport with_types_in $crate::__bindings);
    };
}
