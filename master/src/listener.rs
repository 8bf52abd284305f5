//! The master on a socket: every request served by the router, the
//! timers run alongside, until dropped.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::router;
use crate::server::Server;

impl Server {
    /// Serves `listener` and runs the timers until dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let handler = {
            let server = self.clone();
            Arc::new(move |request| router::route(server.clone(), request))
        };
        tokio::join!(
            tepui_proto::http::serve(listener, handler),
            self.run_timers()
        );
    }
}
