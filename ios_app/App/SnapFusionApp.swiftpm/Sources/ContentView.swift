import SnapFusionKit
import SwiftUI
import UniformTypeIdentifiers

/// Two tabs, Generate and Benchmark, with the model folder and Core ML settings in the toolbar.
struct ContentView: View {
    @EnvironmentObject private var store: ModelStore
    @State private var importing = false

    var body: some View {
        TabView {
            NavigationStack {
                GenerateView()
                    .navigationTitle("SnapFusion")
                    .toolbar { settings }
            }
            .tabItem { Label("Generate", systemImage: "wand.and.stars") }
            NavigationStack {
                BenchmarkView()
                    .navigationTitle("Benchmark")
                    .toolbar { settings }
            }
            .tabItem { Label("Benchmark", systemImage: "stopwatch") }
        }
        .safeAreaInset(edge: .top) {
            if let fraction = store.importProgress {
                ProgressView(value: fraction) { Text("Copying the model into the app…") }
                    .padding(8)
            } else if let message = store.message {
                Text(message)
                    .font(.footnote)
                    .padding(8)
                    .frame(maxWidth: .infinity)
                    .background(.yellow.opacity(0.2))
            }
        }
        .fileImporter(isPresented: $importing, allowedContentTypes: [.folder]) { result in
            switch result {
            case let .success(url): Task { await store.importFolder(url) }
            case let .failure(error): store.message = error.localizedDescription
            }
        }
    }

    private var settings: some ToolbarContent {
        ToolbarItem(placement: .primaryAction) {
            Menu {
                Button {
                    importing = true
                } label: {
                    Label("Choose model folder", systemImage: "folder")
                }
                .disabled(store.importProgress != nil || store.activity != nil)
                Picker("Compute units", selection: $store.computeUnits) {
                    Text("Automatic (\(store.description.map { ModelCompatibility.recommendedComputeUnits(for: $0).rawValue } ?? "from the model"))")
                        .tag(ComputeUnits?.none)
                    ForEach(ComputeUnits.allCases, id: \.self) { Text($0.rawValue).tag(ComputeUnits?.some($0)) }
                }
                .disabled(store.activity != nil)
                Toggle("Reduce memory", isOn: $store.reduceMemory)
                    .disabled(store.activity != nil)
                if !store.imported.isEmpty {
                    Menu("Imported models") {
                        ForEach(store.imported, id: \.self) { url in
                            Menu(url.lastPathComponent + (store.isInUse(url) ? " (in use)" : "")) {
                                Button("Use") { store.select(url) }
                                    .disabled(store.isInUse(url))
                                Button("Delete", role: .destructive) { store.deleteImported(url) }
                            }
                        }
                    }
                    .disabled(store.activity != nil)
                }
                if let folder = store.folder {
                    Text("Model: \(folder.lastPathComponent)")
                }
            } label: {
                Image(systemName: "gearshape")
            }
        }
    }
}
