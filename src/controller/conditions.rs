//! kstatus conditions live with the API types (the migration engine sets them too); the
//! controller uses them from here.

pub use crate::api::conditions::*;
