import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Consent receipts: append one, append a batch, history, active purposes.
enum ConsentRoutes {
    /// A batch entry: a receipt's fields, and the pid they are for, side by side.
    struct BatchEntry: Decodable, Sendable {
        let pid: String
        let receipt: ConsentService.ReceiptFields

        private enum CodingKeys: String, CodingKey { case pid }

        init(from decoder: any Decoder) throws {
            pid = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .pid)
            receipt = try ConsentService.ReceiptFields(from: decoder)
        }
    }

    struct BatchBody: Decodable, Sendable {
        let receipts: [BatchEntry]
    }

    struct Receipt: JSONWritable {
        let receipt: ConsentReceipt

        init(_ receipt: ConsentReceipt) { self.receipt = receipt }

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("receipt_id", receipt.receiptID)
                json.member("pid", receipt.pid.rawValue)
                json.member("seq", receipt.seq)
                guard !receipt.redacted else {
                    // Erased: only the links of the chain remain.
                    json.member("hash", Hex.encode(receipt.hash))
                    json.member("prev_hash", Hex.encode(receipt.previousHash))
                    json.member("redacted", true)
                    return
                }
                json.member("action", receipt.action.rawValue)
                json.key("purposes")
                json.array(receipt.purposes) { $0.value($1.rawValue) }
                json.member("basis", receipt.basis?.rawValue)
                json.member("source", receipt.source)
                json.member("collected_at", receipt.collectedAt)
                json.member("expires_at", receipt.expiresAt)
                json.member("recorded_at", receipt.recordedAt)
                json.member("hash", Hex.encode(receipt.hash))
                json.member("prev_hash", Hex.encode(receipt.previousHash))
                json.member("redacted", receipt.redacted)
            }
        }
    }

    struct History: JSONWritable {
        let pid: PID
        let receipts: [ConsentReceipt]
        let chainValid: Bool

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.key("receipts")
                json.array(receipts) { Receipt($1).write(to: &$0) }
                json.member("chain_valid", chainValid)
            }
        }
    }

    struct Active: JSONWritable {
        let pid: PID
        let active: [ActiveConsent]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.key("active")
                json.array(active) { json, consent in
                    json.object { json in
                        json.member("purpose", consent.purpose.rawValue)
                        json.member("basis", consent.basis.rawValue)
                        json.member("granted_at", consent.grantedAt)
                        json.member("expires_at", consent.expiresAt)
                        json.member("receipt_id", consent.receiptID)
                    }
                }
            }
        }
    }

    struct BatchResult: JSONWritable {
        let receipts: [ConsentReceipt]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("count", Int64(receipts.count))
                json.key("receipts")
                json.array(receipts) { json, receipt in
                    json.object { json in
                        json.member("receipt_id", receipt.receiptID)
                        json.member("pid", receipt.pid.rawValue)
                        json.member("seq", receipt.seq)
                        json.member("hash", Hex.encode(receipt.hash))
                    }
                }
            }
        }
    }

    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/subjects/{pid}/consents", roles: [.ingest]) { try await append($0, services) }
        api.route("GET", "/v1/subjects/{pid}/consents", roles: [.serve, .privacyOfficer], limited: true) { try await history($0, services) }
        api.route("GET", "/v1/subjects/{pid}/consent", roles: [.serve], limited: true) { try await active($0, services) }
        api.route("POST", batchPattern, roles: [.ingest], bodyBytesMax: services.configuration.limits.batchBodyBytesMax) {
            try await batch($0, services)
        }
    }

    static func append(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let fields = try request.http.decode(ConsentService.ReceiptFields.self)
        let draft = try ConsentService.parse(fields, field: "", limits: services.configuration.limits, now: request.now)
        let pid = try services.homePID(request.http.parameter("pid"))
        return .json(Receipt(try await ConsentService.append(draft, for: pid, call: request.call)), status: 201)
    }

    static let batchPattern = "/v1/consents/batch"

    static func batch(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(BatchBody.self)
        let stored = try await ConsentService.batch(body.receipts.map { ($0.pid, $0.receipt) },
                                                    refusalDetail: Refusals.detail(method: "POST", pattern: batchPattern), call: request.call)
        return .json(BatchResult(receipts: stored), status: 201)
    }

    static func history(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let pid = try services.homePID(request.http.parameter("pid"))
        let (receipts, chainValid) = try await ConsentService.history(of: pid, call: request.call)
        return .json(History(pid: pid, receipts: receipts, chainValid: chainValid))
    }

    static func active(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let pid = try services.homePID(request.http.parameter("pid"))
        return .json(Active(pid: pid, active: try await ConsentService.active(of: pid, call: request.call)))
    }
}
