import DomicileNet
import Foundation

/// An HTTPServer on a loopback port with a few routes for tests.
final class TestServer: Sendable {
    let server: HTTPServer
    let address: SocketAddress
    var port: UInt16 { address.port }
    let exchanges = ExchangeLog()

    final class ExchangeLog: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [HTTPExchange] = []
        func append(_ exchange: HTTPExchange) { lock.lock(); entries.append(exchange); lock.unlock() }
        var all: [HTTPExchange] { lock.lock(); defer { lock.unlock() }; return entries }
    }

    init(settings: HTTPServer.Settings = .loopback, requestIDFilter: HTTPServer.RequestIDFilter? = nil, tls: TLSContext? = nil,
         extraRoutes: (inout Router) -> Void = { _ in }) throws {
        var router = Router()
        router.add("GET", "/healthz", .inline { _ in .json(bytes: Array(#"{"status":"ok"}"#.utf8)) })
        router.add("GET", "/items/{id}", .inline { request in .text("item \(request.parameter("id"))") })
        router.post("/echo") { request in
            HTTPResponse(status: 200, headers: ["Content-Type": request.headers["content-type"] ?? "application/octet-stream"],
                         body: request.body)
        }
        router.get("/slow") { request in
            let milliseconds = UInt64(try request.queryParameters()["ms"] ?? "100") ?? 100
            try await Task.sleep(nanoseconds: milliseconds * 1_000_000)
            return .text("slept \(milliseconds)")
        }
        router.post("/json") { request in
            struct Payload: Codable { let name: String; let count: Int }
            let payload = try request.decode(Payload.self)
            return .json(payload)
        }
        router.get("/fail") { _ in
            struct Hidden: Error {}
            throw Hidden()
        }
        extraRoutes(&router)
        let log = exchanges
        server = try HTTPServer(settings: settings, router: router, requestIDFilter: requestIDFilter, observer: { log.append($0) }, tls: tls)
        address = try server.start(address: try SocketAddress(parsing: "127.0.0.1:0"))
    }

    func stop() async {
        await server.shutdown(graceMilliseconds: 2_000)
    }
}
