//! End-to-end tests of the `tidewater` binary and of the library it is built on, in one
//! test binary (each test binary links every dependency, which is most of the build).

mod convert;
mod export;
mod extremes;
mod integrity;
mod interop;
mod library;
mod object_store;
mod people;
mod serve;
mod service;
mod util;
mod where_cli;
