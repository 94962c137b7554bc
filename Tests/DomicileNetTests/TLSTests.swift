import DomicileNet
import DomicileModel
import DomicileTestSupport
import Foundation
import XCTest

/// The HTTP server and client over TLS (docs/HTTP.md, "TLS"): our client,
/// curl and `openssl s_client` against our server; refused certificates
/// (unknown CA, expired, another host); bad bytes; a reload on a live server.
final class TLSTests: XCTestCase {
    /// A CA and files for certificates it issues, in a temporary directory.
    final class PKI: @unchecked Sendable {
        let directory = TemporaryDirectory("domicile-tls")
        let authority: IssuedCertificate
        var caFile: String { directory.file("ca.pem") }

        init(name: String = "Test CA") throws {
            authority = try CertificateIssuer.makeAuthority(commonName: name)
            try authority.write(certificateTo: directory.file("ca.pem"), keyTo: directory.file("ca-key.pem"))
        }

        /// Issues a certificate and writes it; returns (certificate file, key file).
        func issue(_ name: String, hosts: [String] = ["127.0.0.1"], notBeforeOffset: Int = -300,
                   validSeconds: Int = 86_400) throws -> (certificate: String, key: String) {
            let issued = try CertificateIssuer.issue(commonName: name, hosts: hosts, by: authority,
                                                     notBeforeOffset: notBeforeOffset, validSeconds: validSeconds)
            let files = (directory.file("\(name).pem"), directory.file("\(name)-key.pem"))
            try issued.write(certificateTo: files.0, keyTo: files.1)
            return files
        }

        func serverContext(_ name: String = "node", hosts: [String] = ["127.0.0.1"], notBeforeOffset: Int = -300,
                           validSeconds: Int = 86_400, minimumVersion: TLSVersion = .v1_3) throws -> TLSContext {
            let files = try issue(name, hosts: hosts, notBeforeOffset: notBeforeOffset, validSeconds: validSeconds)
            return try TLSContext.server(certificateChainFile: files.certificate, keyFile: files.key, minimumVersion: minimumVersion)
        }

        func client() throws -> HTTPClient {
            var settings = HTTPClient.Settings()
            settings.tls = try TLSContext.client(caFile: caFile)
            return HTTPClient(settings: settings)
        }
    }

    func test_ourClient_talksToOurServer_overTLS_bigBodiesIncluded() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext())
        let client = try pki.client()

        let health = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(String(decoding: health.body, as: UTF8.self), #"{"status":"ok"}"#)

        // Larger than a record and than a socket buffer: partial writes both ways.
        let body = (0..<900_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let echoed = try await client.send("POST", "/echo", to: fixture.address, body: body)
        XCTAssertEqual(echoed.status, 200)
        XCTAssertEqual(echoed.body, body)
        // Keep-alive: the second call reused the first connection.
        XCTAssertEqual(client.connectionCounts(for: fixture.address).busy + client.connectionCounts(for: fixture.address).idle, 1)
        await fixture.stop()
    }

    func test_aClientWithoutTheCA_isRefused_andAPlaintextClientGetsNothing() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext())
        let stranger = try PKI(name: "Another CA")

        do {
            _ = try await stranger.client().send("GET", "/healthz", to: fixture.address)
            XCTFail("a certificate from an unknown CA was accepted")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed(_, let reason) = failure else { return XCTFail("\(failure)") }
            XCTAssertTrue(reason.contains("certificate refused"), reason)
        }

        do {
            _ = try await HTTPClient().send("GET", "/healthz", to: fixture.address)
            XCTFail("a plaintext request was answered")
        } catch let failure as HTTPClient.Failure {
            guard case .connectionClosed = failure else { return XCTFail("\(failure)") }
        }
        // The server goes on serving.
        let health = try await pki.client().send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(health.status, 200)
        await fixture.stop()
    }

    func test_anExpiredCertificate_isRefused() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext("expired", notBeforeOffset: -7_200, validSeconds: 3_600))
        do {
            _ = try await pki.client().send("GET", "/healthz", to: fixture.address)
            XCTFail("an expired certificate was accepted")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed(_, let reason) = failure else { return XCTFail("\(failure)") }
            XCTAssertTrue(reason.contains("expired"), reason)
        }
        await fixture.stop()
    }

    func test_aCertificateForAnotherHost_isRefused() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext("elsewhere", hosts: ["10.9.8.7", "elsewhere.example"]))
        do {
            _ = try await pki.client().send("GET", "/healthz", to: fixture.address)
            XCTFail("a certificate for another host was accepted")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed(_, let reason) = failure else { return XCTFail("\(failure)") }
            XCTAssertTrue(reason.contains("mismatch"), reason)
        }
        await fixture.stop()
    }

    func test_aServerName_isCheckedInsteadOfTheAddress_whenGiven() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext("named", hosts: ["node.example"]))
        var settings = HTTPClient.Settings()
        settings.tls = try TLSContext.client(caFile: pki.caFile)
        settings.tlsServerName = "node.example"
        let named = try await HTTPClient(settings: settings).send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(named.status, 200)
        settings.tlsServerName = "other.example"
        do {
            _ = try await HTTPClient(settings: settings).send("GET", "/healthz", to: fixture.address)
            XCTFail("a certificate for another name was accepted")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed(_, let reason) = failure else { return XCTFail("\(failure)") }
            XCTAssertTrue(reason.contains("mismatch"), reason)
        }
        await fixture.stop()
    }

    func test_badBytes_closeThatConnectionOnly() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext())
        // A TLS record header announcing a handshake, then garbage.
        let raw = try RawConnection(port: fixture.port)
        XCTAssertTrue(raw.send([0x16, 0x03, 0x01, 0x00, 0x40] + [UInt8](repeating: 0xAB, count: 64)))
        XCTAssertThrowsError(try raw.readResponse(), "the server answered garbage with HTTP")
        let plain = try RawConnection(port: fixture.port)
        XCTAssertTrue(plain.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertThrowsError(try plain.readResponse(), "the server answered plaintext HTTP on its TLS port")

        let health = try await pki.client().send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(health.status, 200)
        await fixture.stop()
    }

    /// Seeded random bytes before the handshake (some behind a TLS record
    /// header), and garbage records after a real handshake: each closes its
    /// own connection, no connection is left behind, the server serves on.
    func test_randomBytes_beforeAndAfterTheHandshake_closeOnlyTheirConnections() async throws {
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext())
        var random = SeededRandom(seed: 20_261_130)
        for round in 0..<64 {
            let length = Int.random(in: 1...2_048, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if round % 2 == 0 { bytes = [0x16, 0x03, 0x01, UInt8(length >> 8), UInt8(length & 0xFF)] + bytes }
            let raw = try RawConnection(port: fixture.port, receiveTimeoutSeconds: 5)
            _ = raw.send(bytes)
            if round % 4 == 0 { raw.reset() }
        }
        if let python = ChildProcess.find("python3") {
            let script = """
                import os, random, socket, ssl, sys
                context = ssl.create_default_context(cafile=sys.argv[1])
                for seed in range(8):
                    tls = context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="127.0.0.1")
                    garbage = random.Random(seed).randbytes(64)
                    os.write(tls.fileno(), bytes([0x17, 0x03, 0x03, 0x00, 64]) + garbage)
                    tls.settimeout(5)
                    try:
                        answer = tls.recv(100)
                    except (ssl.SSLError, OSError):
                        answer = b""
                    print("closed" if not answer else "answered")
                """
            let result = try ChildProcess.run(python, ["-c", script, pki.caFile, "\(fixture.port)"], captureStandardError: true)
            XCTAssertEqual(result.output.split(separator: "\n").map(String.init), Array(repeating: "closed", count: 8), result.output)
        }
        let health = try await pki.client().send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(health.status, 200)
        // Every garbage connection was closed (those left waiting mid-record by the header timeout).
        let deadline = Date().addingTimeInterval(20)
        while fixture.server.connectionCount > 1 && Date() < deadline { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertLessThanOrEqual(fixture.server.connectionCount, 1, "only the client's keep-alive connection is left")
        await fixture.stop()
    }

    /// A client that never finishes its handshake is closed at the header
    /// timeout, not held until a write timeout for an answer it cannot read.
    func test_aStalledHandshake_isClosedAtTheHeaderTimeout() async throws {
        let pki = try PKI()
        var settings = HTTPServer.Settings.loopback
        settings.writeTimeoutMilliseconds = 60_000
        let fixture = try TestServer(settings: settings, tls: try pki.serverContext())
        for prefix in [[], [UInt8]([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])] {
            let raw = try RawConnection(port: fixture.port, receiveTimeoutSeconds: 20)
            XCTAssertTrue(raw.send(prefix))
            XCTAssertThrowsError(try raw.readResponse()) { error in
                guard case RawConnection.Failure.closed = error else { return XCTFail("\(error): the server held the connection") }
            }
        }
        await fixture.stop()
    }

    func test_curl_withTheCAFile_andTLS12RefusedByDefault() async throws {
        guard let curl = ChildProcess.find("curl") else { throw XCTSkip("curl is not installed (apt-get install -y curl)") }
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext())
        let base = "https://127.0.0.1:\(fixture.port)"

        let health = try ChildProcess.run(curl, ["-sS", "--cacert", pki.caFile, "-i", "\(base)/healthz"])
        XCTAssertEqual(health.status, 0)
        XCTAssertTrue(health.output.hasPrefix("HTTP/1.1 200 OK"), health.output)
        let posted = try ChildProcess.run(curl, ["-sS", "--cacert", pki.caFile, "-H", "Content-Type: application/json",
                                                 "--data", #"{"name":"curl","count":3}"#, "\(base)/json"])
        XCTAssertEqual(posted.output, #"{"count":3,"name":"curl"}"#)

        // Without the CA curl refuses the server; TLS 1.2 is refused by a 1.3 server.
        XCTAssertNotEqual(try ChildProcess.run(curl, ["-sS", "\(base)/healthz"]).status, 0)
        XCTAssertNotEqual(try ChildProcess.run(curl, ["-sS", "--cacert", pki.caFile, "--tls-max", "1.2", "\(base)/healthz"]).status, 0)
        await fixture.stop()

        let lenient = try TestServer(tls: try pki.serverContext("lenient", minimumVersion: .v1_2))
        let old = try ChildProcess.run(curl, ["-sS", "--cacert", pki.caFile, "--tls-max", "1.2", "https://127.0.0.1:\(lenient.port)/healthz"])
        XCTAssertEqual(old.status, 0)
        XCTAssertEqual(old.output, #"{"status":"ok"}"#)
        await lenient.stop()
    }

    func test_opensslSClient_verifiesTheServer_andGetsAnAnswer() async throws {
        guard let openssl = ChildProcess.find("openssl") else { throw XCTSkip("openssl is not installed (apt-get install -y openssl)") }
        let pki = try PKI()
        let fixture = try TestServer(tls: try pki.serverContext())
        let command = "printf 'GET /items/7 HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
            + "\(openssl) s_client -connect 127.0.0.1:\(fixture.port) -CAfile \(pki.caFile) -verify_return_error "
            + "-verify_ip 127.0.0.1 -tls1_3 -quiet -ign_eof"
        let result = try ChildProcess.run("/bin/sh", ["-c", command], captureStandardError: true)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("HTTP/1.1 200 OK"), result.output)
        XCTAssertTrue(result.output.contains("item 7"), result.output)
        await fixture.stop()
    }

    func test_mutualTLS_aServerAskingForClientCertificates_refusesAClientWithout() async throws {
        let pki = try PKI()
        let server = try pki.issue("server")
        let fixture = try TestServer(tls: try TLSContext.server(certificateChainFile: server.certificate, keyFile: server.key,
                                                                clientCAFile: pki.caFile))
        let identity = try pki.issue("client", hosts: [])
        var settings = HTTPClient.Settings()
        settings.tls = try TLSContext.client(caFile: pki.caFile, certificateChainFile: identity.certificate, keyFile: identity.key)
        let answered = try await HTTPClient(settings: settings).send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(answered.status, 200)

        do {
            _ = try await pki.client().send("GET", "/healthz", to: fixture.address)
            XCTFail("a client without a certificate was answered")
        } catch is HTTPClient.Failure {}
        let stranger = try PKI(name: "Stranger CA")
        let foreign = try stranger.issue("foreign", hosts: [])
        settings.tls = try TLSContext.client(caFile: pki.caFile, certificateChainFile: foreign.certificate, keyFile: foreign.key)
        do {
            _ = try await HTTPClient(settings: settings).send("GET", "/healthz", to: fixture.address)
            XCTFail("a client certificate from another CA was accepted")
        } catch is HTTPClient.Failure {}
        XCTAssertThrowsError(try TLSContext.client(caFile: pki.caFile, certificateChainFile: identity.certificate, keyFile: nil))
        await fixture.stop()
    }

    func test_reload_keepsOpenConnections_andNewConnectionsGetTheNewCertificate() async throws {
        let first = try PKI(name: "First CA")
        let second = try PKI(name: "Second CA")
        let fixture = try TestServer(tls: try first.serverContext())
        let firstClient = try first.client()
        let before = try await firstClient.send("GET", "/items/1", to: fixture.address)
        XCTAssertEqual(before.status, 200)
        XCTAssertEqual(firstClient.connectionCounts(for: fixture.address).idle, 1)

        fixture.server.reloadTLS(try second.serverContext())

        // The open connection carries on: a new one would be refused by this client.
        let during = try await firstClient.send("GET", "/items/2", to: fixture.address)
        XCTAssertEqual(during.status, 200)
        XCTAssertEqual(firstClient.connectionCounts(for: fixture.address).idle, 1)
        // New connections present the new certificate.
        let renewed = try await second.client().send("GET", "/items/3", to: fixture.address)
        XCTAssertEqual(renewed.status, 200)
        do {
            _ = try await first.client().send("GET", "/items/4", to: fixture.address)
            XCTFail("a new connection still presented the old certificate")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed = failure else { return XCTFail("\(failure)") }
        }
        await fixture.stop()
    }

    func test_clientReload_trustsTheNewCA_fromTheNextConnection_andDropsIdleOnes() async throws {
        let first = try PKI(name: "First CA")
        let second = try PKI(name: "Second CA")
        let fixture = try TestServer(tls: try first.serverContext())
        let client = try first.client()
        let before = try await client.send("GET", "/items/1", to: fixture.address)
        XCTAssertEqual(before.status, 200)
        XCTAssertEqual(client.connectionCounts(for: fixture.address).idle, 1)

        // The server moves to the second CA's certificate; the client is told to trust the second CA only.
        fixture.server.reloadTLS(try second.serverContext())
        client.reloadTLS(try TLSContext.client(caFile: second.caFile))
        // The idle connection (verified against the first CA) is not reused: the call makes a new one, which verifies.
        let renewed = try await client.send("GET", "/items/2", to: fixture.address)
        XCTAssertEqual(renewed.status, 200)

        // And trust follows the reload: back to the first CA only, the server's certificate from the second is refused.
        client.reloadTLS(try TLSContext.client(caFile: first.caFile))
        do {
            _ = try await client.send("GET", "/items/3", to: fixture.address)
            XCTFail("a new connection was verified against the CA the client no longer trusts")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed = failure else { return XCTFail("\(failure)") }
        }
        await fixture.stop()
    }

    /// A connection busy when the trust is reloaded is not kept once its call
    /// ends: the next call connects again and verifies against the new trust.
    func test_clientReload_closesAConnectionBusyAtTheReload_whenItsCallEnds() async throws {
        let first = try PKI(name: "First CA")
        let second = try PKI(name: "Second CA")
        let fixture = try TestServer(tls: try first.serverContext())
        let client = try first.client()
        async let slow = client.send("GET", "/slow?ms=300", to: fixture.address)
        var busy = 0
        for _ in 0..<100 where busy == 0 {
            busy = client.connectionCounts(for: fixture.address).busy
            if busy == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        XCTAssertEqual(busy, 1, "the slow call holds a connection")
        // Trust only the second CA, while the server still presents the first's certificate.
        client.reloadTLS(try TLSContext.client(caFile: second.caFile))
        let answered = try await slow
        XCTAssertEqual(answered.status, 200, "a call in flight finishes on its connection")
        XCTAssertEqual(client.connectionCounts(for: fixture.address).idle, 0, "the connection made under the old trust is not kept")
        do {
            _ = try await client.send("GET", "/items/1", to: fixture.address)
            XCTFail("a connection verified against the CA no longer trusted was reused")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed = failure else { return XCTFail("\(failure)") }
        }
        await fixture.stop()
    }
}
