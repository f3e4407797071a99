//! One module per verb.

pub mod run;
