import DomicileNet
import Foundation

/// `domicile bench http`: wrk against Domicile's HTTP server and, in the same
/// run, against nginx configured to answer the same bodies.
struct BenchHTTPCommand: Command {
    static let path = ["bench", "http"]
    static let summary = "benchmark the HTTP server against nginx with wrk"
    static let help = """
        [--seconds N] [--rounds N] [--connections N] [--wrk-threads N] [--tls]

        Starts Domicile's HTTP server (one event loop per core) with GET /healthz and a POST
        /echo that returns the 1 KiB JSON body it receives, and nginx (2 workers) answering
        /healthz with the same body and /echo with the same 1 KiB JSON. Runs wrk against each
        route of each server, alternating servers in --rounds rounds (default 3), and prints the best
        round's requests per second, its p99 latency and the ratio to nginx.
        Needs `wrk` and `nginx` (Debian packages). Build with -c release.

        --tls: both servers speak TLS 1.3 only (a P-256 certificate from a CA made for the run, OpenSSL's
        default suites, no session tickets or cache on either, so nothing resumes), and a third row,
        `handshake`, sends each /healthz on a new connection (Connection: close): full handshakes per second.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 5, range: 1...120)
        let connections = try arguments.integer("connections", default: 64, range: 1...10_000)
        let threads = try arguments.integer("wrk-threads", default: 1, range: 1...64)
        let rounds = try arguments.integer("rounds", default: 3, range: 1...20)
        let tls = arguments.flag("tls")
        try arguments.finish()
        guard let wrk = ChildProcess.find("wrk") else { throw CLIError.failed("wrk is not installed (apt-get install wrk)") }
        let nginx = ChildProcess.find("nginx") ?? (FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : nil)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-http-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let echoBody = jsonBody(bytes: 1_024)
        let script = (directory as NSString).appendingPathComponent("post.lua")
        try """
            wrk.method = "POST"
            wrk.body = '\(echoBody)'
            wrk.headers["Content-Type"] = "application/json"
            """.write(toFile: script, atomically: true, encoding: .utf8)

        var router = Router()
        router.add("GET", "/healthz", .inline { _ in .json(bytes: Array(#"{"status":"ok"}"#.utf8)) })
        router.add("POST", "/echo", .inline { request in .json(bytes: request.body) })
        var settings = HTTPServer.Settings()
        settings.connectionsMax = max(4_096, connections * 2)
        let certificate = tls ? try makeCertificate(in: directory) : nil
        let server = try HTTPServer(settings: settings, router: router,
                                    tls: try certificate.map { try TLSContext.server(certificateChainFile: $0.certificate, keyFile: $0.key) })
        let ours = try server.start(address: try SocketAddress(parsing: "127.0.0.1:0"))

        Output.line("domicile bench http (wrk -t\(threads) -c\(connections) -d\(seconds)s, best of \(rounds) alternating rounds, "
                    + "\(System.coreCount) cores shared by server and wrk\(tls ? ", TLS 1.3 on both" : ""))")
        var nginxProcess: pid_t?
        var nginxPort: UInt16?
        if let nginx {
            let port = try freePort()
            let configuration = (directory as NSString).appendingPathComponent("nginx.conf")
            try nginxConfiguration(directory: directory, port: port, echoBody: echoBody, certificate: certificate)
                .write(toFile: configuration, atomically: true, encoding: .utf8)
            nginxProcess = try ChildProcess.spawn(nginx, ["-c", configuration, "-p", directory])
            nginxPort = port
            try await Task.sleep(nanoseconds: 500_000_000)
        } else {
            Output.line("nginx is not installed: no reference (apt-get install nginx-light)")
        }
        var routes: [(String, [String])] = [("/healthz", []), ("/echo", ["-s", script])]
        if tls { routes.append(("handshake", ["-H", "Connection: close"])) }
        var best: [String: (rate: Double, p99Milliseconds: Double)] = [:]
        for _ in 0..<rounds {
            for (route, extra) in routes {
                var servers: [(String, UInt16)] = [("domicile", ours.port)]
                if let nginxPort { servers.insert(("nginx", nginxPort), at: 0) }
                for (name, port) in servers {
                    let result = try measure(wrk, scheme: tls ? "https" : "http", port: port, route: route == "handshake" ? "/healthz" : route,
                                             extra: extra, seconds: seconds, connections: connections, threads: threads)
                    if result.rate > best["\(name) \(route)"]?.rate ?? 0 { best["\(name) \(route)"] = result }
                }
            }
        }
        Output.line("route            server     requests/s    p99")
        for (route, _) in routes {
            for name in ["nginx", "domicile"] {
                guard let result = best["\(name) \(route)"] else { continue }
                var line = route.padding(toLength: 17, withPad: " ", startingAt: 0) + name.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + String(format: "%10.0f   %7.2f ms", result.rate, result.p99Milliseconds)
                if name == "domicile", let reference = best["nginx \(route)"] {
                    line += String(format: "   ratio %.2f", result.rate / reference.rate)
                }
                Output.line(line)
            }
        }
        if let nginxProcess {
            kill(nginxProcess, SIGQUIT)
            ChildProcess.wait(nginxProcess)
        }
        await server.shutdown(graceMilliseconds: 1_000)
    }

    static func measure(_ wrk: String, scheme: String = "http", port: UInt16, route: String, extra: [String], seconds: Int, connections: Int,
                        threads: Int) throws -> (rate: Double, p99Milliseconds: Double) {
        let arguments = ["-t\(threads)", "-c\(connections)", "-d\(seconds)s", "--latency"] + extra + ["\(scheme)://127.0.0.1:\(port)\(route)"]
        let result = try ChildProcess.run(wrk, arguments)
        guard result.status == 0 else { throw CLIError.failed("wrk exited with \(result.status)") }
        var rate = 0.0
        var p99 = 0.0
        for line in result.output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.first == "Requests/sec:", fields.count > 1 { rate = Double(fields[1]) ?? 0 }
            if fields.first == "99%", fields.count > 1 { p99 = milliseconds(String(fields[1])) }
            if line.contains("Non-2xx") { Output.error("wrk saw non-2xx responses on \(route): \(line)") }
        }
        return (rate, p99)
    }

    /// wrk prints latencies as `812.00us`, `1.23ms` or `1.02s`.
    static func milliseconds(_ text: String) -> Double {
        if text.hasSuffix("us") { return (Double(text.dropLast(2)) ?? 0) / 1_000 }
        if text.hasSuffix("ms") { return Double(text.dropLast(2)) ?? 0 }
        if text.hasSuffix("s") { return (Double(text.dropLast(1)) ?? 0) * 1_000 }
        return Double(text) ?? 0
    }

    /// A JSON object of exactly `bytes` bytes.
    static func jsonBody(bytes: Int) -> String {
        var items: [String] = []
        var text = ""
        var index = 0
        while true {
            let candidate = #"{"items":[\#((items + [#""item-\#(index)""#]).joined(separator: ","))],"pad":""}"#
            if candidate.utf8.count > bytes { break }
            items.append(#""item-\#(index)""#)
            text = candidate
            index += 1
        }
        let padding = bytes - text.utf8.count
        return text.replacingOccurrences(of: #""pad":"""#, with: #""pad":"\#(String(repeating: "x", count: padding))""#)
    }

    /// A CA made for the run and a certificate for 127.0.0.1, written in `directory`.
    static func makeCertificate(in directory: String) throws -> (certificate: String, key: String) {
        let authority = try CertificateIssuer.makeAuthority(commonName: "bench http CA")
        let issued = try CertificateIssuer.issue(commonName: "bench", hosts: ["127.0.0.1"], by: authority)
        let files = ((directory as NSString).appendingPathComponent("server.pem"), (directory as NSString).appendingPathComponent("server-key.pem"))
        try issued.write(certificateTo: files.0, keyTo: files.1)
        return files
    }

    static func nginxConfiguration(directory: String, port: UInt16, echoBody: String, certificate: (certificate: String, key: String)? = nil) -> String {
        let listen = certificate == nil ? "listen 127.0.0.1:\(port) reuseport;" : """
            listen 127.0.0.1:\(port) ssl reuseport;
                    ssl_certificate \(certificate!.certificate);
                    ssl_certificate_key \(certificate!.key);
                    ssl_protocols TLSv1.3;
                    ssl_session_tickets off;
                    ssl_session_cache off;
            """
        return """
        worker_processes 2;
        daemon off;
        pid \(directory)/nginx.pid;
        error_log \(directory)/error.log warn;
        events { worker_connections 4096; }
        http {
            access_log off;
            client_body_temp_path \(directory)/body;
            keepalive_requests 1000000;
            server {
                \(listen)
                location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
                location = /echo { default_type application/json; return 200 '\(echoBody)'; }
            }
        }
        """
    }

    static func freePort() throws -> UInt16 {
        let probe = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), backlog: 1)
        defer { closeDescriptor(probe) }
        return try SocketAddress.localAddress(of: probe).port
    }
}
