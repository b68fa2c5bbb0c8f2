// Starts AWS's DynamoDB Local exactly as its own command line does, but listening on
// 127.0.0.1 only: DynamoDB Local 1.11 has no host option and binds every interface.
// infra/local/bootstrap.sh compiles this against the installed jar.
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        java.lang.reflect.Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            connector.setHost("127.0.0.1");
        }
        proxy.start();
    }
}
