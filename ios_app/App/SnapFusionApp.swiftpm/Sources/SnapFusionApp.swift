import SwiftUI
import UIKit

/// The sample app: generate images from a converted SnapFusion folder and benchmark it.
///
/// One `ModelStore` owns the one pipeline both tabs use; the screen models live here so their
/// settings survive tab switches. Models are released on a memory warning and when the app goes
/// to the background (iOS does not let background apps use the GPU or Neural Engine); the next
/// generation loads them again. The release never blocks the main thread: it runs on a
/// background thread inside a background task, and a load in progress (a first Neural Engine
/// load can take a minute) is abandoned rather than waited for, so leaving the app during a
/// first launch cannot trip the watchdog.
@main
struct SnapFusionApp: App {
    @StateObject private var store = ModelStore()
    @StateObject private var generator = GeneratorModel()
    @StateObject private var benchmark = BenchmarkModel()
    @Environment(\.scenePhase) private var scenePhase

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(store)
                .environmentObject(generator)
                .environmentObject(benchmark)
                .onReceive(NotificationCenter.default.publisher(for: UIApplication.didReceiveMemoryWarningNotification)) { _ in
                    store.unloadModels()
                }
        }
        .onChange(of: scenePhase) { phase in
            if phase == .background {
                generator.cancel()
                benchmark.cancel()
                store.unloadModels()
            }
        }
    }
}
