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
            } footer: {
                Text("Cold load is only cold in a fresh launch of the app. End to end excludes loading.")
            }
            Section {
                if model.isRunning {
                    ProgressView()
                    Button("Cancel", role: .destructive) { model.cancel() }
                } else {
                    Button("Run benchmark") { model.run(store: store) }
                        .disabled(store.folder == nil)
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

    private func row(_ title: String, _ stats: Statistics) -> some View {
        LabeledContent(title, value: "\(TimingsView.ms(stats.p50)) / \(TimingsView.ms(stats.p95))")
    }
}
