import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// The Vagrantfile's provisioning (cluster/vagrant/provision) without a VM:
/// each step run into a directory standing for the VM's root
/// (`DOMICILE_ROOT`), the commands that would change this machine printed
/// instead of run (`DOMICILE_DRY_RUN`). What a VM would add — packages,
/// Swift, systemd running the units, the private network, tc in a kernel —
/// is not covered (docs/OPERATIONS.md).
final class VagrantProvisioningTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
    static let regions = ["eu": "192.168.56.11", "us": "192.168.56.12", "br": "192.168.56.13"]

    /// Runs one step as the Vagrantfile does, into `root`; its output.
    private func provision(_ step: [String], root: String, shared: String) throws -> String {
        let environment = ["DOMICILE_ROOT=\(root)", "DOMICILE_DRY_RUN=1", "DOMICILE_SHARED=\(shared)",
                           "DOMICILE_REGIONS=eu=192.168.56.11,us=192.168.56.12,br=192.168.56.13"]
        let result = try ChildProcess.run("/usr/bin/env", environment + ["bash", "\(Self.repository)/cluster/vagrant/provision"] + step,
                                          captureStandardError: true)
        guard result.status == 0 else { throw ProvisionFailure(description: "provision \(step): \(result.output)") }
        return result.output
    }

    func test_eachVM_getsItsRegionsNodes_withEveryFileTheirConfigsName_andAUnitThatVerifies() throws {
        let work = TemporaryDirectory("domicile-vagrant")
        let shared = work.file("shared")
        // eu has built and published the binary: `build` installs it instead of building.
        try FileManager.default.createDirectory(atPath: "\(shared)/domicile-bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Binary.path, toPath: "\(shared)/domicile-bin/domicile")
        // In the Vagrantfile's order: eu lays the federation out, then each VM installs its nodes.
        for region in ["eu", "us", "br"] {
            let root = work.file(region)
            let built = try provision(["build"], root: root, shared: shared)
            XCTAssertFalse(built.contains("swift build"), built)
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "\(root)/usr/local/bin/domicile"))
            if region == "eu" {
                _ = try provision(["layout"], root: root, shared: shared)
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(shared)/domicile-federation/done"))
            }
            let address = Self.regions[region]!
            let output = try provision(["nodes", region], root: root, shared: shared)
            let home = "\(root)/var/lib/domicile"
            let nodes = try FileManager.default.contentsOfDirectory(atPath: home).filter { $0.contains("-") && !$0.contains(".") }.sorted()
            XCTAssertEqual(nodes, ["\(region)-1", "\(region)-2", "\(region)-3"], "a VM gets its own region's nodes only")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/ca-key.pem"), "the CA's key stays with the layout")
            for node in nodes {
                XCTAssertTrue(output.contains("would: systemctl enable --now domicile@\(node)"), output)
                let directory = "\(home)/\(node)"
                let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/config.json")))
                    as! [String: Any]
                let http = (config["http"] as? [String: Any])?["address"] as? String ?? ""
                XCTAssertTrue(http.hasPrefix("\(address):"), "\(node) serves on its VM's address, not \(http)")
                for named in try Self.filesNamed(by: config) {
                    let path = ((directory as NSString).appendingPathComponent(named) as NSString).standardizingPath
                    XCTAssertTrue(FileManager.default.fileExists(atPath: path), "\(node)'s config names \(named), which is not installed")
                }
                for secret in ["\(directory)/\(node).keyring", "\(directory)/\(node)-key.pem", "\(home)/master.key", "\(home)/tokens.json"] {
                    XCTAssertEqual(try Self.mode(secret), 0o600, secret)
                }
            }
            try verifyUnit(root: root, node: "\(region)-1")
        }
    }

    func test_netem_delaysWhatLeavesForEachOtherRegion_byHalfItsRoundTrip() throws {
        let work = TemporaryDirectory("domicile-vagrant-netem")
        let output = try provision(["netem", "eu"], root: work.path, shared: work.file("shared"))
        // cluster/round-trips: eu-us 80 ms, eu-br 190 ms; a band per other region, a filter per destination.
        XCTAssertTrue(output.contains("parent 1:2 handle 20: netem delay 40ms"), output)
        XCTAssertTrue(output.contains("match ip dst 192.168.56.12/32 flowid 1:2"), output)
        XCTAssertTrue(output.contains("parent 1:3 handle 30: netem delay 95ms"), output)
        XCTAssertTrue(output.contains("match ip dst 192.168.56.13/32 flowid 1:3"), output)
        XCTAssertTrue(output.contains("eu: us 80 ms, br 190 ms round trip"), output)
    }

    /// `systemd-analyze verify` on an instance of the installed unit, its
    /// paths moved under `root` (the binary and data are there, not in /).
    private func verifyUnit(root: String, node: String) throws {
        let unit = try String(contentsOfFile: "\(root)/etc/systemd/system/domicile@.service", encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/local/bin/domicile serve --config /var/lib/domicile/%i/config.json"), unit)
        guard let analyze = ChildProcess.find("systemd-analyze") else {
            print("systemd-analyze is not installed: the unit is not verified")
            return
        }
        let instance = "\(root)/domicile@\(node).service"
        try unit.replacingOccurrences(of: "/usr/local/bin", with: "\(root)/usr/local/bin")
            .replacingOccurrences(of: "/var/lib/domicile", with: "\(root)/var/lib/domicile")
            .write(toFile: instance, atomically: true, encoding: .utf8)
        let verified = try ChildProcess.run(analyze, ["verify", "--man=no", instance], captureStandardError: true)
        XCTAssertEqual(verified.status, 0, verified.output)
        XCTAssertEqual(verified.output.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze had remarks")
    }

    /// Every file a node's config names (relative to its directory).
    static func filesNamed(by config: [String: Any]) throws -> [String] {
        var files = ["keyring", "master_key_file", "policy", "principals"].compactMap { config[$0] as? String }
        files += (config["federation"] as? [String: Any])?["rosters"] as? [String] ?? []
        if let roster = (config["region_log"] as? [String: Any])?["roster"] as? String { files.append(roster) }
        let tls = config["tls"] as? [String: Any] ?? [:]
        files += ["cert_file", "key_file", "ca_file"].compactMap { tls[$0] as? String }
        XCTAssertTrue(files.contains { $0.hasSuffix(".pem") }, "the layout is TLS (cluster init's default)")
        return files
    }

    static func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}

private struct ProvisionFailure: Error, CustomStringConvertible {
    let description: String
}
