#![allow(dead_code)]

pub mod courier;
pub mod cyrus;
pub mod dovecot;
pub mod servers;
