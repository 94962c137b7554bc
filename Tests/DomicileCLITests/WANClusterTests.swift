import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// `cluster/up --wan`: a federation on loopback whose links between regions
/// have the round trips of `cluster/netns`, added in the nodes' own
/// transports, as the nodes themselves measure them (`GET /v1/cluster`,
/// `round_trips`): gossip probes over UDP, federation exchanges over HTTP.
final class WANClusterTests: XCTestCase {
    private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    /// The round trips of cluster/netns (cluster/round-trips), by pair as the configs write them.
    private let netnsRoundTrips: [String: Double] = ["eu-us": 80, "br-us": 120, "br-eu": 190]

    func test_clusterUpWan_givesEachPairOfRegionsTheRoundTripOfClusterNetns_within20Percent() async throws {
        let directory = TemporaryDirectory("domicile-wan")
        let cluster = directory.file("cluster")
        let base = try FreePorts.consecutive(27)
        var environment = ProcessInfo.processInfo.environment
        environment["DOMICILE_BINARY"] = Binary.path
        environment["DOMICILE_CLUSTER_DIR"] = cluster
        func script(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
            let process = try RunningProcess(repository.appendingPathComponent("cluster/\(name)").path, arguments, environment: environment,
                                             stderrPath: directory.file("\(name).stderr"))
            let status = process.wait()
            let errors = (try? String(contentsOfFile: directory.file("\(name).stderr"), encoding: .utf8)) ?? ""
            return (status, process.output.joined(separator: "\n") + errors)
        }
        let up = try script("up", ["--wan", "--http-port", "\(base)", "--gossip-port", "\(base + 9)", "--channel-port", "\(base + 18)"])
        defer { _ = try? script("down", []) }
        XCTAssertEqual(up.status, 0, up.output)

        let config = try json(at: "\(cluster)/eu-1/config.json")
        let configured = try XCTUnwrap((config["wan"] as? [String: Any])?["round_trip_ms"] as? [String: Double], "\(config)")
        XCTAssertEqual(configured, netnsRoundTrips, "cluster/up --wan writes the round trips of cluster/netns")

        let tokens = try json(at: "\(cluster)/tokens.json")
        let token = try XCTUnwrap(tokens["admin"] as? String)
        // The layout serves TLS (cluster init's default): calls verify the nodes against its CA.
        var settings = HTTPClient.Settings()
        settings.tls = try TLSContext.client(caFile: "\(cluster)/ca.pem")
        let client = HTTPClient(settings: settings)
        let nodes = try (0..<9).map { try SocketAddress(parsing: "127.0.0.1:\(base + $0)") }
        func views() async -> [(region: String, roundTrips: [[String: Any]])] {
            var views: [(String, [[String: Any]])] = []
            for node in nodes {
                var headers = HTTPHeaders()
                headers.set("Authorization", "Bearer \(token)")
                guard let response = try? await client.send("GET", "/v1/cluster", to: node, headers: headers), response.status == 200,
                      let view = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                      let region = view["region"] as? String else { continue }
                views.append((region, view["round_trips"] as? [[String: Any]] ?? []))
            }
            return views
        }

        // Medians of the last nine measurements, per node, region and way, once every node has nine of
        // gossip to each peer region and each pair has been measured by a few federation exchanges.
        var medians: [String: [String: [Double]]] = [:]
        let deadline = Date().addingTimeInterval(150)
        repeat {
            try await Task.sleep(nanoseconds: 1_000_000_000)
            let current = await views()
            medians = [:]
            var gossipComplete = current.count == nodes.count
            var federationSamples: [String: Int] = [:]
            for (region, roundTrips) in current {
                var gossipSeen = 0
                for entry in roundTrips {
                    guard let peer = entry["region"] as? String, let way = entry["way"] as? String,
                          let median = entry["median_ms"] as? Double, let samples = entry["samples"] as? Int else { continue }
                    let pair = [region, peer].sorted().joined(separator: "-")
                    if way == "gossip" {
                        if samples >= 9 { gossipSeen += 1 }
                    } else {
                        federationSamples[pair, default: 0] += samples
                    }
                    medians[way, default: [:]][pair, default: []].append(median)
                }
                if gossipSeen < 2 { gossipComplete = false }
            }
            if gossipComplete && netnsRoundTrips.keys.allSatisfy({ federationSamples[$0, default: 0] >= 3 }) { break }
        } while Date() < deadline

        for way in ["gossip", "federation"] {
            for (pair, roundTrip) in netnsRoundTrips.sorted(by: { $0.key < $1.key }) {
                let measured = try XCTUnwrap(median(medians[way]?[pair] ?? []), "no \(way) round trip measured for \(pair): \(medians)")
                print("cluster/up --wan: \(way) round trip \(pair) configured \(Int(roundTrip)) ms, measured \(String(format: "%.1f", measured)) ms "
                      + "(median of the nodes' medians \(medians[way]?[pair] ?? []))")
                XCTAssertEqual(measured, roundTrip, accuracy: roundTrip * 0.2,
                               "\(way) round trip \(pair): configured \(roundTrip) ms, measured \(measured) ms (\(medians[way]?[pair] ?? []))")
            }
        }

        // The demo's workload, through the API only, across the shaped links.
        let workload = try script("workload", [cluster])
        XCTAssertEqual(workload.status, 0, workload.output)
        for expected in ["eu-1 answers 421, home region us", "complete after", "with acks of br, eu, us", "br-1: chain valid"] {
            XCTAssertTrue(workload.output.contains(expected), "cluster/workload's output lacks '\(expected)':\n\(workload.output)")
        }
    }

    func test_clusterInit_writesTheWanSection_andPutsEachRegionOnItsHost() throws {
        let directory = TemporaryDirectory("domicile-wan-init")
        let result = try Binary.run(["cluster", "init", "--dir", directory.file("fed"), "--regions", "eu,us,br", "--nodes-per-region", "1",
                                     "--wan-round-trips", "us-eu=80,*=40", "--wan-loss", "2", "--hosts", "eu=10.0.0.1,us=10.0.0.2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let config = try json(at: directory.file("fed/us-1/config.json"))
        XCTAssertEqual((config["http"] as? [String: Any])?["address"] as? String, "10.0.0.2:7101")
        let gossip = try XCTUnwrap(config["gossip"] as? [String: Any])
        XCTAssertEqual(gossip["address"] as? String, "10.0.0.2:7301")
        XCTAssertEqual(gossip["probe_timeout_ms"] as? Int, 400, "probes wait for the slowest round trip twice over")
        let wan = try XCTUnwrap(config["wan"] as? [String: Any])
        XCTAssertEqual(wan["round_trip_ms"] as? [String: Int], ["eu-us": 80, "br-eu": 40, "br-us": 40], "`*` fills the pairs not named")
        XCTAssertEqual(wan["loss_percent"] as? [String: Double], ["eu-us": 2, "br-eu": 2, "br-us": 2])
        XCTAssertEqual(wan["peers"] as? [String: String], ["10.0.0.1:7100": "eu", "10.0.0.1:7300": "eu", "10.0.0.2:7101": "us",
                                                         "10.0.0.2:7301": "us", "127.0.0.1:7102": "br", "127.0.0.1:7302": "br"])
        let roster = try json(at: directory.file("fed/eu.roster.json"))
        XCTAssertEqual(((roster["nodes"] as? [[String: Any]])?.first)?["channel"] as? String, "10.0.0.1:7500")

        for (arguments, message) in [(["--wan-loss", "1"], "--wan-loss goes with --wan-round-trips"),
                                     (["--wan-round-trips", "eu-eu=3"], "is not a pair such as eu-us"),
                                     (["--hosts", "sa=10.0.0.9"], "is not REGION=ADDRESS for a region of --regions"),
                                     (["--hosts", "eu=10.0.0"], "is not an IPv4 address")] {
            let refused = try Binary.run(["cluster", "init", "--dir", directory.file("refused"), "--regions", "eu,us"] + arguments)
            XCTAssertNotEqual(refused.status, 0, "\(arguments)")
            XCTAssertTrue(refused.stderr.contains(message), "\(arguments): \(refused.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("refused")), "a refused init writes nothing")
        }
    }

    private func json(at path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], path)
    }

    private func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
