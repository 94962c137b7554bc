import DomicilePrivacy
import Foundation

/// `domicile privacy rdp|gaussian`: the accountants, from the command line
/// (for planning a DP-SGD run, and for Tests/Bench/dp_accounting_reference.py,
/// which checks them against Google's dp-accounting).
struct PrivacyRDPCommand: Command {
    static let path = ["privacy", "rdp"]
    static let summary = "ε of a sampled-Gaussian (DP-SGD) run by the RDP accountant"
    static let help = """
        --sample-rate Q --noise-multiplier S --steps N --delta D

        Prints {"epsilon":…,"order":…}: the smallest ε over the default Rényi orders for N steps of
        the sampled Gaussian mechanism with sampling rate Q and noise multiplier S, at δ = D —
        what POST /v1/privacy-budget/charges would charge.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let q = try number(&arguments, "sample-rate", 0...1)
        let sigma = try number(&arguments, "noise-multiplier", 0.01...10_000)
        let steps = try arguments.integer("steps", default: 1, range: 1...100_000_000)
        let delta = try number(&arguments, "delta", 1e-300...0.999_999)
        try arguments.finish()
        let rdp = RDP.sampledGaussian(sampleRate: q, noiseMultiplier: sigma, steps: steps)
        let (epsilon, order) = RDP.epsilon(orders: RDP.defaultOrders, rdp: rdp, delta: delta)
        Output.line(#"{"epsilon":\#(epsilon),"order":\#(order)}"#)
    }
}

struct PrivacyGaussianCommand: Command {
    static let path = ["privacy", "gaussian"]
    static let summary = "σ of the analytic Gaussian mechanism for (ε, δ)"
    static let help = """
        --epsilon E --delta D [--sensitivity 1]

        Prints {"sigma":…,"delta_at_sigma":…}: the smallest σ whose Gaussian noise on an L2
        sensitivity gives (E, D)-DP (Balle and Wang, 2018).
        """

    static func run(_ arguments: inout Arguments) async throws {
        let epsilon = try number(&arguments, "epsilon", 1e-6...1_000)
        let delta = try number(&arguments, "delta", 1e-300...0.999_999)
        let sensitivity = try arguments.option("sensitivity").map { text -> Double in
            guard let value = Double(text), value > 0, value.isFinite else { throw CLIError.usage("--sensitivity: a positive number") }
            return value
        } ?? 1
        try arguments.finish()
        let sigma = AnalyticGaussian.sigma(epsilon: epsilon, delta: delta, sensitivity: sensitivity)
        Output.line(#"{"sigma":\#(sigma),"delta_at_sigma":\#(AnalyticGaussian.delta(sigma: sigma, epsilon: epsilon, sensitivity: sensitivity))}"#)
    }
}

private func number(_ arguments: inout Arguments, _ name: String, _ range: ClosedRange<Double>) throws -> Double {
    guard let text = try arguments.option(name) else { throw CLIError.usage("--\(name) is required") }
    guard let value = Double(text), range.contains(value) else {
        throw CLIError.usage("--\(name): a number in \(range.lowerBound)...\(range.upperBound)")
    }
    return value
}
