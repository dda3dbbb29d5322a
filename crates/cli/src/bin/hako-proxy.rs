//! `hako-proxy DATABASE CONTAINER LISTEN TARGET`: relays one TCP port published on the host's
//! IPv6 loopback address to a container, started and stopped with the container's network
//! attachment (see `hako_net::proxy`).

fn main() {
    std::process::exit(hako_engine::hako_net::proxy::server_main(
        std::env::args_os(),
    ));
}
