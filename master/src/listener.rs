//! The master on a socket: every request served by the router, the
//! timers run alongside, until dropped.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::router;
use crate::server::Server;

impl Server {
    /// Serves `listener` and runs the timers until dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.serve_tls(listener, None).await;
    }

    /// As [`Server::serve`], over TLS when `tls` is given.
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tepui_proto::tls::Server>,
    ) {
        let handler = {
            let server = self.clone();
            Arc::new(move |request| router::route(server.clone(), request))
        };
        tokio::join!(
            tepui_proto::http::serve_tls(listener, handler, tls),
            self.run_timers()
        );
    }
}
