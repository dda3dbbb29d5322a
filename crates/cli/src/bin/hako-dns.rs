//! `hako-dns DATABASE NETWORK`: the name server of one user-defined network, started by the
//! first container attached to it and stopped with the last (see `hako_net::dns`).

fn main() {
    std::process::exit(hako_engine::hako_net::dns::server_main(std::env::args_os()));
}
