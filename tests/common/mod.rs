#![allow(dead_code)]

pub mod dovecot;
