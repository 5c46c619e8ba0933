import SnapFusionKit
import SwiftUI

/// Runs the benchmark harness on this device and shares the JSON for `snapfusion-coreml report`.
struct BenchmarkView: View {
    @EnvironmentObject private var store: ModelStore
    @EnvironmentObject private var model: BenchmarkModel

    var body: some View {
        Form {
            Section {
                TextField("Prompt", text: $model.prompt)
                Stepper("Measured runs: \(model.runs)", value: $model.runs, in: 1...50)
                Stepper("Warm-up runs: \(model.warmup)", value: $model.warmup, in: 0...10)
                Stepper(model.coolDownSeconds == 0 ? "Cool-down: off" : "Cool-down: \(model.coolDownSeconds) s, then until fair",
                        value: $model.coolDownSeconds, in: 0...120, step: 10)
            } footer: {
                Text("Cold load is measured after releasing the models; only the first load after launching the app "
                     + "includes the device's first specialization. End to end excludes loading (in Reduce memory mode "
                     + "the stage times include it). Run a Release build: Debug builds are about 20x slower.")
            }
            Section {
                if model.isRunning {
                    ProgressView()
                    Button("Cancel", role: .destructive) { model.cancel() }
                } else {
                    Button("Run benchmark") { model.run(store: store) }
                        .disabled(store.folder == nil || store.activity == .generating)
                    if store.activity == .generating {
                        Text("Generate is using the models.").font(.footnote).foregroundStyle(.secondary)
                    }
                }
                if let error = model.error {
                    Text(error).foregroundStyle(.red)
                }
            }
            if let report = model.report {
                Section("Result (p50 / p95)") {
                    LabeledContent("Cold / warm load", value: "\(TimingsView.ms(report.load.coldMs)) / \(TimingsView.ms(report.load.warmMs))")
                    row("Text encoder", report.summary.textEncoderMs)
                    row("UNet step", report.summary.unetStepMs)
                    row("Decoder", report.summary.decoderMs)
                    row("End to end", report.summary.endToEndMs)
                    LabeledContent("Peak memory", value: ByteCountFormatter.string(fromByteCount: Int64(report.summary.peakMemoryBytes.p95), countStyle: .memory))
                    LabeledContent("Device", value: "\(report.environment.deviceModel), \(report.environment.os)")
                    LabeledContent("Thermal state (hottest)", value: report.runs.compactMap { $0.thermalState?.end }.max()?.rawValue ?? "-")
                    LabeledContent("Compute units", value: Self.unitsUsed(report))
                    if report.environment.buildConfiguration == "debug" {
                        Text("Debug build: these numbers are not the device's.").foregroundStyle(.orange)
                    }
                    if let url = model.fileURL {
                        ShareLink(item: url) { Label("Share JSON", systemImage: "square.and.arrow.up") }
                    }
                }
            }
            if !model.log.isEmpty {
                Section("Log") {
                    ForEach(Array(model.log.enumerated()), id: \.offset) { item in
                        Text(item.element).font(.caption.monospaced())
                    }
                }
            }
        }
    }

    /// The requested units, and any component that ran elsewhere (a NaN fallback to the GPU).
    static func unitsUsed(_ report: BenchmarkReport) -> String {
        let requested = report.environment.computeUnits
        var moved: [String] = []
        for run in report.runs {
            guard let used = run.computeUnits else { continue }
            for (name, units) in [("text encoder", used.textEncoder), ("UNet", used.unet), ("decoder", used.decoder)] {
                if let units, units != requested, !moved.contains("\(name): \(units.rawValue)") { moved.append("\(name): \(units.rawValue)") }
            }
        }
        return moved.isEmpty ? requested.rawValue : "\(requested.rawValue); \(moved.joined(separator: ", ")) after NaN"
    }

    private func row(_ title: String, _ stats: Statistics) -> some View {
        LabeledContent(title, value: "\(TimingsView.ms(stats.p50)) / \(TimingsView.ms(stats.p95))")
    }
}
