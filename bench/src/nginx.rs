//! The machine's HTTP ceiling: Debian's nginx serving the cached read's exact body as a
//! static file (keep-alive, access log off, two workers), measured by the same wrk as Hearth.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_tests::free_port;

/// Where Debian's nginx-light installs it.
pub const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx; stopped on drop.
pub struct Nginx {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Serves `body` (as `application/json`) for every path.
    pub fn start(body: &[u8]) -> Result<Nginx, String> {
        if !Path::new(NGINX).is_file() {
            return Err(format!("{NGINX} not found (apt-get install nginx-light)"));
        }
        let dir = tempfile::Builder::new()
            .prefix("hearth-bench-nginx-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("www")).map_err(|e| format!("nginx dir: {e}"))?;
        std::fs::write(d.join("www/body.json"), body).map_err(|e| format!("nginx body: {e}"))?;
        let port = free_port();
        // As root, workers would switch to `nobody`, who cannot read a private temp dir.
        let user = if crate::peers::is_root() {
            "user root;\n"
        } else {
            ""
        };
        let conf = format!(
            "{user}worker_processes 2;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 300s;\n\
               client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n\
               fastcgi_temp_path {d}/tmp-fastcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n\
               scgi_temp_path {d}/tmp-scgi;\n  open_file_cache max=16;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n\
                 location / {{ default_type application/json; try_files /body.json =404; }}\n  }}\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).map_err(|e| format!("nginx.conf: {e}"))?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {NGINX}: {e}"))?;
        let mut n = Nginx {
            port,
            child,
            _dir: dir,
        };
        let log = n._dir.path().join("error.log");
        crate::peers::wait_serving("nginx", &mut n.child, &log, || {
            crate::agent::ok_now(port, "/secretsmanager/get")
        })?;
        Ok(n)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops the workers too (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
