import PhotosUI
import SnapFusionKit
import SwiftUI
import UniformTypeIdentifiers

/// Prompt, negative prompt, steps, guidance and seed, a starting image with its strength (image-to-image) and the
/// size (folders with several); Generate with progress and Cancel; the image with Share and Save; per-stage timings.
struct GenerateView: View {
    @EnvironmentObject private var store: ModelStore
    @EnvironmentObject private var model: GeneratorModel
    @State private var exporting = false
    @State private var photo: PhotosPickerItem?

    var body: some View {
        Form {
            Section("Prompt") {
                TextField("What to draw", text: $model.prompt, axis: .vertical)
                    .lineLimit(2...5)
                TextField("What to avoid (negative prompt)", text: $model.negativePrompt, axis: .vertical)
                    .lineLimit(1...3)
                if model.stepsAdjustable {
                    Stepper("Steps: \(model.steps)", value: $model.steps, in: 1...50)
                } else {
                    // the folder's sampler lists are planned for this count (convert --steps N for another)
                    LabeledContent("Steps", value: "\(model.steps)")
                }
                VStack(alignment: .leading) {
                    Text("Guidance: \(model.guidance, specifier: "%.1f")")
                    Slider(value: $model.guidance, in: 1...15, step: 0.5)
                }
                HStack {
                    Text("Seed")
                    TextField("Seed", value: $model.seed, format: IntegerFormatStyle<UInt64>().grouping(.never))
                        .keyboardType(.numberPad)
                        .multilineTextAlignment(.trailing)
                    Button {
                        model.seed = UInt64.random(in: 0...UInt64(UInt32.max))
                    } label: {
                        Image(systemName: "dice")
                    }
                    .accessibilityLabel("Random seed")
                }
            }
            Section("Starting image") {
                if let image = model.startingImage {
                    HStack {
                        Image(decorative: image, scale: 1)
                            .resizable()
                            .scaledToFit()
                            .frame(maxHeight: 120)
                            .accessibilityLabel("Starting image")
                        Spacer()
                        Button("Remove", role: .destructive) {
                            photo = nil
                            model.clearStartingImage()
                        }
                        .buttonStyle(.borderless)
                    }
                    VStack(alignment: .leading) {
                        // 1 starts from noise at the first step; lower keeps more of the image
                        Text("Strength: \(model.strength, specifier: "%.2f")")
                        Slider(value: $model.strength, in: 0.05...1, step: 0.05)
                    }
                }
                PhotosPicker(selection: $photo, matching: .images) {
                    Label(model.startingImage == nil ? "Choose a starting image" : "Choose another image", systemImage: "photo")
                }
                .disabled(!model.hasEncoder)
                if !model.hasEncoder {
                    Text("This model folder has no VAE encoder: convert it with --components including encoder to start from an image.")
                        .font(.footnote)
                        .foregroundStyle(.secondary)
                }
            }
            if model.sizes.count > 1 {
                Section("Size") {
                    Picker("Size (height x width)", selection: $model.sizeIndex) {
                        ForEach(Array(model.sizes.enumerated()), id: \.offset) { index, size in
                            Text("\(size.image.height) x \(size.image.width)").tag(index)
                        }
                    }
                }
            }
            Section {
                if model.isRunning {
                    ProgressView(value: model.fraction) { Text(model.status) }
                    if let preview = model.preview {
                        // The pipeline's estimate of the final image at this step.
                        Image(decorative: preview, scale: 1)
                            .resizable()
                            .interpolation(.none)
                            .scaledToFit()
                            .frame(maxHeight: 160)
                            .accessibilityLabel("Preview of the image being generated")
                    }
                    Button("Cancel", role: .destructive) { model.cancel() }
                } else {
                    Button("Generate") { model.generate(store: store) }
                        .disabled(store.folder == nil || model.prompt.isEmpty || store.activity == .benchmarking)
                    if store.activity == .benchmarking {
                        Text("The benchmark is using the models.").font(.footnote).foregroundStyle(.secondary)
                    }
                }
                if let error = model.error {
                    Text(error).foregroundStyle(.red)
                }
            }
            if let image = model.image {
                Section("Image") {
                    let picture = Image(decorative: image, scale: 1)
                    picture
                        .resizable()
                        .scaledToFit()
                    HStack {
                        ShareLink(item: picture, preview: SharePreview(model.prompt, image: picture))
                        Spacer()
                        Button {
                            exporting = true
                        } label: {
                            Label("Save PNG", systemImage: "square.and.arrow.down")
                        }
                        .disabled(model.png == nil)
                    }
                    .buttonStyle(.borderless)
                }
            }
            if let timings = model.timings {
                Section("Timings") {
                    TimingsView(timings: timings)
                }
            }
        }
        .onAppear { model.adopt(store.description, folder: store.folder) }
        .onChange(of: store.folder) { _ in model.adopt(store.description, folder: store.folder) }
        .onChange(of: photo) { item in model.pickStartingImage(item) }
        .fileExporter(isPresented: $exporting, document: model.png.map { PNGDocument(data: $0) }, contentType: .png,
                      defaultFilename: "snapfusion-\(model.seed).png") { result in
            if case let .failure(error) = result { model.error = error.localizedDescription }
        }
    }
}

/// Per-stage timings of one generation.
struct TimingsView: View {
    let timings: StageTimings

    var body: some View {
        LabeledContent("Text encoder", value: Self.ms(timings.textEncoderMs))
        if timings.imageEncoderMs > 0 {
            LabeledContent("Image encoder", value: Self.ms(timings.imageEncoderMs))
        }
        LabeledContent("UNet, \(timings.unetStepMs.count) steps", value: Self.ms(timings.unetStepMs.reduce(0, +)))
        LabeledContent("UNet per step", value: Self.ms(timings.unetStepMs.reduce(0, +) / Double(max(timings.unetStepMs.count, 1))))
        LabeledContent("Decoder", value: Self.ms(timings.decoderMs))
        LabeledContent("End to end", value: Self.ms(timings.endToEndMs))
    }

    static func ms(_ value: Double) -> String {
        value >= 1000 ? String(format: "%.2f s", value / 1000) : String(format: "%.1f ms", value)
    }
}
