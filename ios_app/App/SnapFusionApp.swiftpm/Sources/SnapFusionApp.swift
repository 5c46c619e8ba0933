import SwiftUI

/// The sample app: generate images from a converted SnapFusion folder and benchmark it.
@main
struct SnapFusionApp: App {
    @StateObject private var store = ModelStore()

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(store)
        }
    }
}
