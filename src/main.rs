//! The `smailarchiver` command.

fn main() {
    let code = smailarchiver::app::main(std::env::args_os().skip(1));
    std::process::exit(code);
}
